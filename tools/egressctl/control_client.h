// egressctl's side of the control API: one JSON request per connection to
// the daemon's unix socket.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace egressctl {

// The reply without its "ok" field, or nullopt with `error` set (the
// daemon's own message when it refused the request).
std::optional<nlohmann::json> TryCall(const std::string& socket_path, const nlohmann::json& request,
                                      std::string* error);

// As TryCall, but prints "egressctl: ERROR" on stderr and exits 1 on failure.
nlohmann::json Call(const std::string& socket_path, const nlohmann::json& request);

[[noreturn]] void Fail(const std::string& message, int code = 1);

}  // namespace egressctl
