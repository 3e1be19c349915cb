// Changes to attached sandboxes at runtime: an instance's own rules
// (`egressctl handler`, `egressctl hosts`) and a reload of every policy,
// all or nothing.
#include <spdlog/spdlog.h>

#include "userspace/sandbox/registry.h"

namespace egressd::sandbox {

StatusOr<SandboxInfo> Registry::ChangeInstanceRules(const std::string& instance,
                                                    const RulesChange& change) {
  std::lock_guard lock(mu_);
  SandboxInfo* sb = nullptr;
  for (auto& [id, info] : sandboxes_)
    if (info.instance == instance) sb = &info;
  if (!sb) return EGRESSD_ERROR("no attached sandbox has instance \"{}\"", instance);
  if (!sb->policy)
    return EGRESSD_ERROR("sandbox {} has no policy loaded ({}): fix it first", instance,
                         sb->problem);
  policy::InstanceRules rules = sb->rules;
  EGRESSD_RETURN_IF_ERROR(change(rules, *sb->policy));
  // Host lists and handlers live in the proxy and the DNS forwarder only:
  // the kernel's rules stay as they are.
  sb->policy = WithInstanceRules(*sb->policy, rules, sb->instance);
  sb->rules = std::move(rules);
  Publish();
  Status saved = SaveState();
  if (!saved.ok()) spdlog::error("registry: {}", saved.ToString());
  spdlog::info("sandbox {}: runtime rules changed", instance);
  return *sb;
}

StatusOr<size_t> Registry::ReloadPolicies() {
  std::lock_guard lock(mu_);
  // Load everything first: one bad file changes nothing.
  std::map<uint32_t, std::shared_ptr<const policy::CompiledPolicy>> loaded;
  std::string errors;
  for (const auto& [id, sb] : sandboxes_) {
    auto policy = LoadPolicySource(sb.source, options_.policy_dir);
    if (!policy.ok()) {
      errors += fmt::format("sandbox {} (policy {}): {}\n", sb.instance, sb.source.Describe(),
                            policy.status().message());
      continue;
    }
    loaded[id] = *policy;
  }
  if (!errors.empty()) return EGRESSD_ERROR("reload refused, nothing changed:\n{}", errors);
  size_t changed = 0;
  Status failed;
  for (auto& [id, policy] : loaded) {
    if (!sandboxes_[id].listening) continue;  // stays refused, `list` says why
    Status st = ApplyPolicy(sandboxes_[id], policy);
    if (!st.ok()) {
      // Kernel map trouble: keep proxy, kernel and state file in agreement
      // about what was applied before reporting.
      failed = st;
      break;
    }
    ++changed;
  }
  Publish();
  if (!failed.ok()) {
    Status saved = SaveState();
    if (!saved.ok()) spdlog::error("registry: {}", saved.ToString());
    return EGRESSD_ERROR("reload stopped after {} of {} sandboxes: {}", changed, loaded.size(),
                         failed.message());
  }
  EGRESSD_RETURN_IF_ERROR(SaveState());
  return changed;
}

}  // namespace egressd::sandbox
