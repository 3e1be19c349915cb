#include "userspace/daemon/runtime_rules_commands.h"

#include <algorithm>

#include "policy/host_glob.h"
#include "policy/policy_loader.h"
#include "userspace/sandbox/instance_rules_json.h"

namespace egressd::daemon {
namespace {

using nlohmann::json;

json BindingJson(const char* level, const char* kind, const std::string& host,
                 const policy::HandlerBinding& binding, const policy::Policy& policy) {
  json out = {{"level", level},
              {"kind", kind},
              {"handler", binding.handler},
              {"params", sandbox::ParamsJson(binding.params)}};
  if (!host.empty()) out["host"] = host;
  std::string problem = policy::CheckBinding(policy.handlers, binding);
  if (!problem.empty()) out["problem"] = problem + ": the requests it covers are refused";
  return out;
}

// Every binding of the instance, in the order a request meets them.
json HandlerList(const sandbox::SandboxInfo& sb) {
  const policy::Policy& policy = sb.policy->policy();
  const policy::InstanceRules& rules = sb.rules;
  json bindings = json::array();
  for (const auto& b : rules.by_host)
    bindings.push_back(BindingJson("instance", "by_host", b.host, b.binding, policy));
  for (const auto& b : policy.by_host)
    bindings.push_back(BindingJson("policy", "by_host", b.host, b.binding, policy));
  if (rules.catch_all)
    bindings.push_back(BindingJson("instance", "catch_all", "", *rules.catch_all, policy));
  if (policy.catch_all)
    bindings.push_back(BindingJson("policy", "catch_all", "", *policy.catch_all, policy));
  return {{"instance", sb.instance}, {"policy", sb.policy->name()}, {"bindings", bindings}};
}

json HostLists(const sandbox::SandboxInfo& sb) {
  const policy::Policy& policy = sb.policy->policy();
  return {{"instance", sb.instance},
          {"policy", sb.policy->name()},
          {"allowed_hosts", sb.rules.allowed_hosts},
          {"denied_hosts", sb.rules.denied_hosts},
          {"policy_allowed_hosts", policy.allowed_hosts},
          {"policy_denied_hosts", policy.denied_hosts},
          {"deny_by_default", sb.policy->deny_by_default()}};
}

StatusOr<std::string> HostGlob(const std::string& text, const char* what) {
  std::string error;
  auto glob = policy::NormalizeHostPattern(text, &error);
  if (!glob) return EGRESSD_ERROR("{}: \"{}\": {}", what, text, error);
  return *glob;
}

void Erase(std::vector<std::string>& list, const std::string& entry) {
  list.erase(std::remove(list.begin(), list.end(), entry), list.end());
}

void AddOnce(std::vector<std::string>& list, const std::string& entry) {
  if (std::find(list.begin(), list.end(), entry) == list.end()) list.push_back(entry);
}

StatusOr<json> HandlerSet(sandbox::Registry& registry, const control::ControlRequest& request) {
  if (request.handler.empty()) return EGRESSD_ERROR("handler_set: \"handler\" is required");
  policy::HandlerBinding binding{request.handler, {}};
  if (request.params) {
    auto params = sandbox::ParseParams(*request.params, "params");
    if (!params.ok()) return EGRESSD_ERROR("handler_set: {}", params.status().message());
    binding.params = std::move(*params);
  }
  std::string host;
  if (!request.host.empty()) {
    auto glob = HostGlob(request.host, "handler_set: host");
    if (!glob.ok()) return glob.status();
    host = *glob;
  }
  std::vector<std::string> warnings;
  auto sb = registry.ChangeInstanceRules(
      request.instance, [&](policy::InstanceRules& rules, const policy::CompiledPolicy& policy) {
        std::string problem = policy::CheckBinding(policy.policy().handlers, binding);
        if (!problem.empty())
          return EGRESSD_ERROR("handler \"{}\" under policy \"{}\": {}", binding.handler,
                               policy.name(), problem);
        const policy::Handler& handler = policy.policy().handlers.at(binding.handler);
        if (host.empty()) {
          // A credential bound to every host would go to every host.
          if (handler.uses_secrets())
            return EGRESSD_ERROR(
                "handler \"{}\" adds a credential ({{{{secret:...}}}}): bind it to the hosts it "
                "is for with --host, not to every request",
                binding.handler);
          rules.catch_all = binding;
          return Status{};
        }
        auto same = std::find_if(rules.by_host.begin(), rules.by_host.end(),
                                 [&](const policy::HostBinding& b) { return b.host == host; });
        if (same != rules.by_host.end())
          same->binding = binding;
        else
          rules.by_host.push_back({host, binding});
        return Status{};
      });
  if (!sb.ok()) return sb.status();
  // Judged with the new binding in place: InterceptRefusal looks at the
  // handler bound to the host now (before the change, none was).
  if (!host.empty() && host.find('*') == std::string::npos)
    if (std::string why = sb->policy->InterceptRefusal(host); !why.empty())
      warnings.push_back(why + ": TLS connections to it will be refused");
  json out = HandlerList(*sb);
  out["warnings"] = warnings;
  return out;
}

StatusOr<json> HandlerClear(sandbox::Registry& registry, const control::ControlRequest& request) {
  std::string host;
  if (!request.host.empty()) {
    auto glob = HostGlob(request.host, "handler_clear: host");
    if (!glob.ok()) return glob.status();
    host = *glob;
  }
  bool cleared = false;
  auto sb = registry.ChangeInstanceRules(request.instance, [&](policy::InstanceRules& rules,
                                                               const policy::CompiledPolicy&) {
    if (host.empty()) {
      cleared = rules.catch_all.has_value();
      rules.catch_all.reset();
    } else {
      size_t before = rules.by_host.size();
      std::erase_if(rules.by_host, [&](const policy::HostBinding& b) { return b.host == host; });
      cleared = rules.by_host.size() != before;
    }
    return Status{};
  });
  if (!sb.ok()) return sb.status();
  json out = HandlerList(*sb);
  out["cleared"] = cleared;
  return out;
}

StatusOr<json> Hosts(sandbox::Registry& registry, const control::ControlRequest& request) {
  const std::string& action = request.action;
  if (action == "list") {
    auto sb = registry.FindInstance(request.instance);
    if (!sb.ok()) return sb.status();
    if (!sb->policy) return EGRESSD_ERROR("sandbox {} has no policy loaded", request.instance);
    return HostLists(*sb);
  }
  const bool lists = action == "allow" || action == "deny" || action == "remove";
  if (!lists && action != "clear")
    return EGRESSD_ERROR("hosts: \"action\" must be allow, deny, remove, clear or list");
  if (lists && request.hosts.empty())
    return EGRESSD_ERROR("hosts {}: name at least one host glob", action);
  if (!lists && !request.hosts.empty()) return EGRESSD_ERROR("hosts clear takes no host globs");
  std::vector<std::string> globs;
  for (const auto& text : request.hosts) {
    auto glob = HostGlob(text, "hosts");
    if (!glob.ok()) return glob.status();
    globs.push_back(*glob);
  }
  std::vector<std::string> warnings;
  auto sb = registry.ChangeInstanceRules(
      request.instance, [&](policy::InstanceRules& rules, const policy::CompiledPolicy& policy) {
        if (action == "clear") {
          rules.allowed_hosts.clear();
          rules.denied_hosts.clear();
          return Status{};
        }
        for (const auto& glob : globs) {
          if (action == "remove") {
            bool listed =
                std::count(rules.allowed_hosts.begin(), rules.allowed_hosts.end(), glob) +
                    std::count(rules.denied_hosts.begin(), rules.denied_hosts.end(), glob) >
                0;
            if (!listed)
              return EGRESSD_ERROR(
                  "hosts remove: \"{}\" is in neither of the instance's lists (the policy's "
                  "lists change with the policy file)",
                  glob);
            Erase(rules.allowed_hosts, glob);
            Erase(rules.denied_hosts, glob);
          } else if (action == "allow") {
            Erase(rules.denied_hosts, glob);
            AddOnce(rules.allowed_hosts, glob);
            const auto& denied = policy.policy().denied_hosts;
            if (std::find(denied.begin(), denied.end(), glob) != denied.end())
              warnings.push_back("\"" + glob + "\" is in the policy's denied_hosts, which wins");
          } else {
            Erase(rules.allowed_hosts, glob);
            AddOnce(rules.denied_hosts, glob);
          }
        }
        if (rules.allowed_hosts.size() > policy::kMaxListEntries ||
            rules.denied_hosts.size() > policy::kMaxListEntries)
          return EGRESSD_ERROR("hosts: an instance list holds at most {} entries",
                               policy::kMaxListEntries);
        return Status{};
      });
  if (!sb.ok()) return sb.status();
  json out = HostLists(*sb);
  out["warnings"] = warnings;
  return out;
}

}  // namespace

std::optional<StatusOr<json>> HandleRuntimeRulesCommand(sandbox::Registry& registry,
                                                        const control::ControlRequest& request) {
  const std::string& cmd = request.cmd;
  if (cmd != "handler_set" && cmd != "handler_clear" && cmd != "handler_list" && cmd != "hosts")
    return std::nullopt;
  if (request.instance.empty()) return EGRESSD_ERROR("{}: \"instance\" is required", cmd);
  if (cmd == "handler_set") return HandlerSet(registry, request);
  if (cmd == "handler_clear") return HandlerClear(registry, request);
  if (cmd == "hosts") return Hosts(registry, request);
  auto sb = registry.FindInstance(request.instance);
  if (!sb.ok()) return sb.status();
  if (!sb->policy) return EGRESSD_ERROR("sandbox {} has no policy loaded", request.instance);
  return HandlerList(*sb);
}

}  // namespace egressd::daemon
