// One control API request, as read from its JSON line: the command and the
// fields the commands use, each checked for its type. Pure (text in, a
// request or an error out) so that it can be unit-tested and fuzzed; which
// fields a command needs is the daemon's business (Daemon::Handle).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/common/status.h"

namespace egressd::control {

struct ControlRequest {
  std::string cmd;                // "" if absent (refused by the daemon)
  std::string target;             // stats: an instance or a cgroup
  std::string cgroup;             // attach, detach
  std::string policy;             // attach: a policy name, or
  std::string policy_file;        // attach: an absolute path
  std::string instance;           // attach, events, policy_suggest, ca, secret_*, handler_*, hosts
  std::string name;               // secret_set, secret_rm: the secret's name
  std::string value;              // secret_set only: the secret (never log a request)
  std::string netns;              // attach: "host" or a path
  std::optional<bool> transient;  // attach
  std::optional<uint64_t> after_seq;     // events
  std::optional<uint64_t> limit;         // events
  std::string handler;                   // handler_set: the handler's name
  std::string host;                      // handler_set, handler_clear: a host glob ("" = catch-all)
  std::optional<nlohmann::json> params;  // handler_set: an object of strings and lists
  std::string action;                    // hosts: allow, deny, remove, clear, list
  std::vector<std::string> hosts;        // hosts: host globs
  bool operator==(const ControlRequest&) const = default;
};

// The fields above that a request may hold; others are ignored (a newer
// egressctl may send more). A string field may also be null (= absent).
// Errors: "request is not a JSON object", "\"cgroup\" must be a string", ...
StatusOr<ControlRequest> ParseControlRequest(std::string_view line);

// The request as egressctl sends it (absent fields left out).
nlohmann::json ControlRequestJson(const ControlRequest& request);

}  // namespace egressd::control
