// The registry's table of sandboxes: ids, lookups, and the immutable views
// it publishes to the data path (SandboxView). The rest of the class:
//   registry_attach.cc  attach (or switch a policy), detach, reap orphans
//   registry_rules.cc   runtime rules and policy reloads of attached sandboxes
//   registry_state.cc   state.json and audit observations across restarts
#include "userspace/sandbox/registry.h"

#include <set>

#include "policy/suggest.h"
#include "userspace/sandbox/instance_name.h"

namespace egressd::sandbox {

Registry::Registry(RegistryOptions options, kernel::BpfPrograms* bpf)
    : options_(std::move(options)), bpf_(bpf), ca_store_(options_.state_dir) {
  views_ = std::make_shared<const std::map<uint32_t, std::shared_ptr<const SandboxView>>>();
}

std::shared_ptr<const policy::CompiledPolicy> Registry::WithInstanceRules(
    const policy::CompiledPolicy& loaded, const policy::InstanceRules& rules,
    const std::string& instance) {
  return std::make_shared<const policy::CompiledPolicy>(loaded.policy(), rules, instance);
}

void Registry::RememberFinished(Finished finished) {
  finished_.push_back(std::move(finished));
  if (finished_.size() > kFinishedKept) finished_.pop_front();
}

std::shared_ptr<const SandboxView> Registry::Find(uint32_t sandbox_id) const {
  std::shared_ptr<const std::map<uint32_t, std::shared_ptr<const SandboxView>>> views;
  {
    std::lock_guard lock(views_mu_);
    views = views_;
  }
  auto it = views->find(sandbox_id);
  return it == views->end() ? nullptr : it->second;
}

void Registry::Publish() {
  auto views = std::make_shared<std::map<uint32_t, std::shared_ptr<const SandboxView>>>();
  for (const auto& [id, sb] : sandboxes_) {
    if (!sb.policy) continue;  // no policy: the proxy refuses its connections
    auto view = std::make_shared<SandboxView>();
    view->id = id;
    view->generation = sb.generation;
    view->instance = sb.instance;
    view->cgroup = sb.cgroup;
    view->policy = sb.policy;
    view->counters = sb.counters;
    view->observed = sb.observed;
    view->leaves = sb.leaves;
    view->own_netns = !sb.netns.empty();
    (*views)[id] = std::move(view);
  }
  auto ports = std::make_shared<std::set<uint16_t>>();
  ports->insert(options_.proxy_port);
  for (const auto& [id, sb] : sandboxes_)
    if (sb.netns.empty()) ports->insert(sb.dns_port);
  {
    std::lock_guard lock(views_mu_);
    views_ = std::move(views);
    listener_ports_ = std::move(ports);
  }
  if (options_.views_changed) options_.views_changed();
}

bool Registry::IsListenerPort(uint16_t port) const {
  std::shared_ptr<const std::set<uint16_t>> ports;
  {
    std::lock_guard lock(views_mu_);
    ports = listener_ports_;
  }
  return port == options_.proxy_port || (ports && ports->count(port));
}

uint32_t Registry::AllocateId() {
  // Round-robin, so a just-freed id (whose connections may linger) is reused last.
  for (uint32_t n = 1; n < EGRESSD_MAX_SANDBOXES; ++n) {
    uint32_t id = next_id_hint_;
    next_id_hint_ = next_id_hint_ % (EGRESSD_MAX_SANDBOXES - 1) + 1;
    if (!sandboxes_.count(id)) return id;
  }
  return 0;
}

Status Registry::CheckNewInstance(const std::string& instance) const {
  EGRESSD_RETURN_IF_ERROR(CheckInstanceName(instance));
  for (const auto& [id, other] : sandboxes_)
    if (other.instance == instance)
      return EGRESSD_ERROR("instance \"{}\" is already attached (cgroup {})", instance,
                           other.cgroup);
  return {};
}

SandboxInfo* Registry::FindByCgroup(const std::string& path) {
  for (auto& [id, sb] : sandboxes_)
    if (sb.cgroup == path) return &sb;
  return nullptr;
}

StatusOr<std::string> Registry::Suggest(const std::string& instance) const {
  std::lock_guard lock(mu_);
  std::shared_ptr<const policy::CompiledPolicy> policy;
  std::shared_ptr<Observations> observed;
  for (const auto& [id, sb] : sandboxes_)
    if (sb.instance == instance) {
      policy = sb.policy;
      observed = sb.observed;
    }
  if (!observed)
    for (auto it = finished_.rbegin(); it != finished_.rend() && !observed; ++it)
      if (it->instance == instance) {
        policy = it->policy;
        observed = it->observed;
      }
  if (!observed)
    return EGRESSD_ERROR(
        "no instance \"{}\" is attached or ended recently (egressd keeps the last {})", instance,
        kFinishedKept);
  if (!policy) return EGRESSD_ERROR("instance \"{}\" has no policy loaded", instance);
  if (policy->policy().mode != policy::PolicyMode::kAudit)
    return EGRESSD_ERROR(
        "instance \"{}\" runs policy \"{}\" in enforce mode: only audit mode (mode: audit) "
        "records what a sandbox does",
        instance, policy->name());
  return policy::SuggestPolicy(policy->policy(), observed->Snapshot(), instance);
}

StatusOr<SandboxInfo> Registry::FindInstance(const std::string& instance) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, sb] : sandboxes_)
    if (sb.instance == instance) return sb;
  return EGRESSD_ERROR("no attached sandbox has instance \"{}\"", instance);
}

StatusOr<std::string> Registry::CaCertificate(const std::string& instance) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, sb] : sandboxes_) {
    if (sb.instance != instance) continue;
    if (!sb.leaves)
      return EGRESSD_ERROR(
          "sandbox \"{}\" has no CA: it could not be loaded when egressd started "
          "(see egressd's log)",
          instance);
    return sb.leaves->ca().cert_pem();
  }
  return EGRESSD_ERROR("no sandbox \"{}\" is attached", instance);
}

std::optional<std::string> Registry::SandboxContaining(const std::string& cgroup_path) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, sb] : sandboxes_)
    if (cgroup_path == sb.cgroup || cgroup_path.rfind(sb.cgroup + "/", 0) == 0) return sb.instance;
  return std::nullopt;
}

std::vector<SandboxInfo> Registry::List() const {
  std::lock_guard lock(mu_);
  std::vector<SandboxInfo> out;
  for (const auto& [id, sb] : sandboxes_) out.push_back(sb);
  return out;
}

}  // namespace egressd::sandbox
