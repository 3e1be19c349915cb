// An instance's runtime rules (policy/instance_rules.h) as JSON: how
// state.json keeps them across restarts and how the control API shows them.
// Reading checks every field's type (no exceptions) and normalizes host
// globs, so a hand-edited or corrupt file is an error, not a looser rule.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "policy/instance_rules.h"
#include "userspace/common/status.h"

namespace egressd::sandbox {

// {"allowed_hosts": [...], "denied_hosts": [...],
//  "by_host": [{"host": GLOB, "handler": NAME, "params": {...}}],
//  "catch_all": {"handler": NAME, "params": {...}} | null}
nlohmann::json InstanceRulesJson(const policy::InstanceRules& rules);
// `where` prefixes errors ("sandboxes[0].rules.by_host[1].host: ...").
StatusOr<policy::InstanceRules> ParseInstanceRules(const nlohmann::json& j,
                                                   const std::string& where);

// {"KEY": "string" | ["list", ...]}: an object of strings and lists of strings.
nlohmann::json ParamsJson(const policy::Params& params);
StatusOr<policy::Params> ParseParams(const nlohmann::json& j, const std::string& where);

}  // namespace egressd::sandbox
