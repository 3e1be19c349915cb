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

// Connection is hop-by-hop: an HTTP/1.1 request whose only Connection field
// is exactly "close" loses it, so the upstream keeps its connection open for
// the next request (upstream_pool.h); egressd still ends the client's
// connection after the response. Any other Connection field (more options,
// several fields, HTTP/1.0) is left as it is.
bool HasDroppableConnectionClose(const protocol::HttpRequestHead& head);
// Removes it when it is droppable; true when the head changed.
bool DropConnectionClose(protocol::HttpRequestHead& head);

}  // namespace egressd::proxy
