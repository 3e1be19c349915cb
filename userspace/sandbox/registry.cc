#include "userspace/sandbox/registry.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "policy/bpf_lowering.h"
#include "userspace/kernel/cgroup.h"

namespace egressd::sandbox {
namespace {

constexpr int kStateVersion = 1;

}  // namespace

Registry::Registry(RegistryOptions options, kernel::BpfPrograms* bpf)
    : options_(std::move(options)), bpf_(bpf) {
  views_ = std::make_shared<const std::map<uint32_t, std::shared_ptr<const SandboxView>>>();
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
    (*views)[id] = std::move(view);
  }
  std::lock_guard lock(views_mu_);
  views_ = std::move(views);
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

SandboxInfo* Registry::FindByCgroup(const std::string& path) {
  for (auto& [id, sb] : sandboxes_)
    if (sb.cgroup == path) return &sb;
  return nullptr;
}

Status Registry::WriteRules(const policy::Policy& policy, uint32_t set_id) {
  for (const auto& [key, value] : policy::LowerDenyCidrs(policy, set_id)) {
    Status st = bpf_->PutCidrRule(key, value);
    if (!st.ok()) {
      DeleteRules(policy, set_id);
      return st;
    }
  }
  return {};
}

void Registry::DeleteRules(const policy::Policy& policy, uint32_t set_id) {
  for (const auto& [key, value] : policy::LowerDenyCidrs(policy, set_id)) {
    Status st = bpf_->DeleteCidrRule(key);
    if (!st.ok()) spdlog::warn("registry: {}", st.ToString());
  }
}

Status Registry::WriteConfig(const SandboxInfo& sb) {
  egressd_sandbox_config config{};
  config.sandbox_id = sb.id;
  config.policy_set_id = sb.policy_set_id;
  config.flags = 0;
  config.proxy_port_host = options_.proxy_port;
  config.dns_port_host = options_.dns_port;
  return bpf_->WriteConfig(sb.cgroup_id, config);
}

// Writes the policy's rules under a fresh set id, flips the config, then
// removes the previous set: each step leaves a consistent kernel state.
Status Registry::ApplyPolicy(SandboxInfo& sb,
                             std::shared_ptr<const policy::CompiledPolicy> policy) {
  uint32_t new_set = next_policy_set_id_++;
  EGRESSD_RETURN_IF_ERROR(WriteRules(policy->policy(), new_set));
  uint32_t old_set = sb.policy_set_id;
  auto old_policy = sb.policy;
  sb.policy_set_id = new_set;
  Status st = WriteConfig(sb);
  if (!st.ok()) {
    sb.policy_set_id = old_set;
    DeleteRules(policy->policy(), new_set);
    return st;
  }
  sb.policy = std::move(policy);
  sb.problem.clear();
  if (old_policy) DeleteRules(old_policy->policy(), old_set);
  return {};
}

StatusOr<AttachResult> Registry::Attach(const std::string& cgroup_spec, const PolicySource& source,
                                        const std::string& instance) {
  std::lock_guard lock(mu_);
  auto cgroup = kernel::ResolveCgroup(cgroup_spec, options_.cgroup2_mount);
  if (!cgroup.ok()) return cgroup.status();
  auto policy = LoadPolicySource(source, options_.policy_dir);
  if (!policy.ok()) return policy.status();

  if (SandboxInfo* existing = FindByCgroup(cgroup->path)) {
    // Runtime switch: the next connection and the next request follow it.
    EGRESSD_RETURN_IF_ERROR(ApplyPolicy(*existing, *policy));
    existing->source = source;
    if (!instance.empty()) existing->instance = instance;
    Publish();
    Status saved = SaveState();
    if (!saved.ok()) spdlog::error("registry: {}", saved.ToString());
    spdlog::info("sandbox {} ({}) switched to policy {}", existing->instance, existing->cgroup,
                 (*policy)->name());
    return AttachResult{*existing, true};
  }

  SandboxInfo sb;
  sb.id = AllocateId();
  if (sb.id == 0)
    return EGRESSD_ERROR("too many sandboxes (at most {})", EGRESSD_MAX_SANDBOXES - 1);
  sb.generation = next_generation_++;
  sb.cgroup = cgroup->path;
  sb.cgroup_id = cgroup->id;
  sb.instance =
      instance.empty() ? cgroup->path.substr(cgroup->path.find_last_of('/') + 1) : instance;
  sb.source = source;
  sb.counters = std::make_shared<ProxyCounters>();
  for (const auto& [id, other] : sandboxes_)
    if (other.instance == sb.instance)
      return EGRESSD_ERROR("instance \"{}\" is already attached (cgroup {})", sb.instance,
                           other.cgroup);

  EGRESSD_RETURN_IF_ERROR(bpf_->ResetCounters(sb.id));
  int fd = open(sb.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return EGRESSD_ERROR("cannot open cgroup {}: {}", sb.cgroup, strerror(errno));
  Status attached = bpf_->AttachCgroup(fd, sb.id);
  close(fd);
  if (!attached.ok()) return attached;
  // From here the cgroup denies everything until ApplyPolicy writes its config.
  Status applied = ApplyPolicy(sb, *policy);
  if (!applied.ok()) {
    Status st = bpf_->DetachSandbox(sb.id);
    if (!st.ok()) spdlog::error("registry: rollback: {}", st.ToString());
    return applied;
  }
  sandboxes_[sb.id] = sb;
  Publish();
  Status saved = SaveState();
  if (!saved.ok()) spdlog::error("registry: {}", saved.ToString());
  spdlog::info("sandbox {} attached: cgroup {} policy {} (id {})", sb.instance, sb.cgroup,
               sb.policy->name(), sb.id);
  return AttachResult{sb, false};
}

Status Registry::Detach(const std::string& cgroup_spec) {
  std::lock_guard lock(mu_);
  // The cgroup may be gone already (the container ended): match by path too.
  std::string path = cgroup_spec;
  auto cgroup = kernel::ResolveCgroup(cgroup_spec, options_.cgroup2_mount);
  if (cgroup.ok()) {
    path = cgroup->path;
  } else if (!cgroup_spec.empty() && cgroup_spec[0] != '/') {
    path = options_.cgroup2_mount + "/" + cgroup_spec;
  }
  SandboxInfo* sb = FindByCgroup(path);
  if (!sb) {
    for (auto& [id, other] : sandboxes_)
      if (other.instance == cgroup_spec) sb = &other;
  }
  if (!sb) return EGRESSD_ERROR("{} is not attached", cgroup_spec);
  Status st = bpf_->DetachSandbox(sb->id);
  if (!st.ok()) return st;
  if (sb->policy) DeleteRules(sb->policy->policy(), sb->policy_set_id);
  spdlog::info("sandbox {} detached: cgroup {}", sb->instance, sb->cgroup);
  sandboxes_.erase(sb->id);
  Publish();
  return SaveState();
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

std::vector<SandboxInfo> Registry::List() const {
  std::lock_guard lock(mu_);
  std::vector<SandboxInfo> out;
  for (const auto& [id, sb] : sandboxes_) out.push_back(sb);
  return out;
}

Status Registry::SaveState() const {
  nlohmann::json state;
  state["version"] = kStateVersion;
  state["next_policy_set_id"] = next_policy_set_id_;
  state["sandboxes"] = nlohmann::json::array();
  for (const auto& [id, sb] : sandboxes_) {
    state["sandboxes"].push_back({
        {"id", sb.id},
        {"cgroup", sb.cgroup},
        {"cgroup_id", sb.cgroup_id},
        {"instance", sb.instance},
        {"policy_kind", sb.source.kind == PolicySource::Kind::kName ? "name" : "file"},
        {"policy", sb.source.value},
        {"policy_set_id", sb.policy_set_id},
    });
  }
  std::string path = options_.state_dir + "/state.json";
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << state.dump(2) << "\n";
    if (!out) return EGRESSD_ERROR("cannot write {}", tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0)
    return EGRESSD_ERROR("cannot replace {}: {}", path, strerror(errno));
  return {};
}

Status Registry::Restore() {
  std::lock_guard lock(mu_);
  std::string path = options_.state_dir + "/state.json";
  std::ifstream in(path);
  if (!in) return {};  // first start
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(in);
    if (state.at("version").get<int>() != kStateVersion)
      return EGRESSD_ERROR("{}: unsupported state version", path);
    next_policy_set_id_ = state.at("next_policy_set_id").get<uint32_t>();
    for (const auto& s : state.at("sandboxes")) {
      SandboxInfo sb;
      sb.id = s.at("id").get<uint32_t>();
      sb.cgroup = s.at("cgroup").get<std::string>();
      sb.cgroup_id = s.at("cgroup_id").get<uint64_t>();
      sb.instance = s.at("instance").get<std::string>();
      sb.source.kind = s.at("policy_kind").get<std::string>() == "name" ? PolicySource::Kind::kName
                                                                        : PolicySource::Kind::kFile;
      sb.source.value = s.at("policy").get<std::string>();
      sb.policy_set_id = s.at("policy_set_id").get<uint32_t>();
      sb.counters = std::make_shared<ProxyCounters>();
      sb.generation = next_generation_++;
      sandboxes_[sb.id] = sb;
    }
  } catch (const std::exception& e) {
    sandboxes_.clear();
    return EGRESSD_ERROR("{} is corrupt: {}", path, e.what());
  }

  for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
    SandboxInfo& sb = it->second;
    auto cgroup = kernel::ResolveCgroup(sb.cgroup, options_.cgroup2_mount);
    if (!cgroup.ok() || cgroup->id != sb.cgroup_id) {
      // The cgroup is gone (the sandbox ended while we were down): forget it.
      spdlog::info("sandbox {}: cgroup {} is gone, forgetting it", sb.instance, sb.cgroup);
      Status st = bpf_->DetachSandbox(sb.id);
      if (!st.ok()) spdlog::warn("registry: {}", st.ToString());
      it = sandboxes_.erase(it);
      continue;
    }
    if (!bpf_->SandboxLinksPinned(sb.id)) {
      // Someone removed our pins: attach again (zeroed config: deny all first).
      spdlog::warn("sandbox {}: pinned links missing, attaching again", sb.instance);
      int fd = open(sb.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      Status st = fd < 0 ? EGRESSD_ERROR("open {}: {}", sb.cgroup, strerror(errno))
                         : bpf_->AttachCgroup(fd, sb.id);
      if (fd >= 0) close(fd);
      if (!st.ok()) spdlog::error("sandbox {}: {}", sb.instance, st.ToString());
    }
    auto policy = LoadPolicySource(sb.source, options_.policy_dir);
    if (!policy.ok()) {
      // Fail closed: the kernel keeps the last rules; the proxy refuses all.
      sb.problem = policy.status().message();
      spdlog::error("sandbox {}: policy {} failed to load, refusing its connections: {}",
                    sb.instance, sb.source.Describe(), sb.problem);
    } else {
      Status st = ApplyPolicy(sb, *policy);
      if (!st.ok()) {
        sb.problem = st.message();
        spdlog::error("sandbox {}: {}", sb.instance, st.ToString());
      }
    }
    spdlog::info("sandbox {} re-adopted: cgroup {} id {}", sb.instance, sb.cgroup, sb.id);
    ++it;
  }
  // Rule sets of the previous daemon that no sandbox points at any more.
  std::set<uint32_t> live;
  for (const auto& [id, sb] : sandboxes_) live.insert(sb.policy_set_id);
  Status pruned = bpf_->PruneCidrRules(live);
  if (!pruned.ok()) spdlog::warn("registry: {}", pruned.ToString());
  Publish();
  return SaveState();
}

}  // namespace egressd::sandbox
