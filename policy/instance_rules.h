// What an operator changed for one instance at runtime (`egressctl handler`,
// `egressctl hosts`): host lists added to its policy's, and handler bindings
// that come before its policy's. Kept in the state dir by the registry;
// compiled together with the policy (CompiledPolicy).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "policy/handler.h"

namespace egressd::policy {

struct InstanceRules {
  // Normalized host globs. allowed_hosts joins the policy's (a non-empty
  // list makes the instance deny by default); denied_hosts joins the
  // policy's and wins, as there.
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> denied_hosts;
  std::vector<HostBinding> by_host;         // before the policy's by_host
  std::optional<HandlerBinding> catch_all;  // before the policy's catch_all
  bool empty() const {
    return allowed_hosts.empty() && denied_hosts.empty() && by_host.empty() && !catch_all;
  }
  bool operator==(const InstanceRules&) const = default;
};

}  // namespace egressd::policy
