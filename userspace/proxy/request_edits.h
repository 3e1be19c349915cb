// What a handler changes in a request head (policy::RequestEdit), applied to
// the parsed fields: headers replaced or removed by name (case-insensitive,
// every field of that name), one query parameter set in the target.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "policy/handler_eval.h"
#include "userspace/protocol/http_request_stream.h"

namespace egressd::proxy {

void ApplyRequestEdits(const std::vector<policy::RequestEdit>& edits,
                       protocol::HttpRequestHead& head);

// The path of a request target, query and fragment excluded: "/a/b" for
// "/a/b?x=1" and for "http://host:80/a/b?x=1"; "/" for "http://host";
// "*" stays "*".
std::string TargetPath(std::string_view target);

// The target with query parameter `name` set to `value` (percent-encoded):
// every `name=...` already there removed, `name=value` appended.
std::string SetQueryParameter(std::string_view target, std::string_view name,
                              std::string_view value);

}  // namespace egressd::proxy
