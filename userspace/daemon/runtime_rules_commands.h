// The control API's runtime rules of one instance: `handler_set`,
// `handler_clear`, `handler_list` (`egressctl handler`) and `hosts`
// (`egressctl hosts`). Each checks its request against the instance's policy,
// changes nothing on an error, and replies with what is in effect now.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "userspace/common/status.h"
#include "userspace/control/control_request.h"
#include "userspace/sandbox/registry.h"

namespace egressd::daemon {

// nullopt when `request.cmd` is none of these commands.
std::optional<StatusOr<nlohmann::json>> HandleRuntimeRulesCommand(
    sandbox::Registry& registry, const control::ControlRequest& request);

}  // namespace egressd::daemon
