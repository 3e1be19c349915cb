// What survives a restart: state.json (the sandboxes, their policies, ports,
// namespaces and runtime rules) and the observations of audit-mode instances
// (for `policy suggest`).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "policy/bpf_lowering.h"
#include "policy/cidr.h"
#include "userspace/common/atomic_file.h"
#include "userspace/kernel/cgroup.h"
#include "userspace/kernel/netns.h"
#include "userspace/sandbox/ended_instances.h"
#include "userspace/sandbox/observations_file.h"
#include "userspace/sandbox/registry.h"
#include "userspace/sandbox/state_file.h"

namespace egressd::sandbox {

Status Registry::SaveState() const {
  SavedState state;
  state.next_policy_set_id = next_policy_set_id_;
  for (const auto& [id, sb] : sandboxes_)
    state.sandboxes.push_back({sb.id, sb.cgroup, sb.cgroup_id, sb.instance, sb.source,
                               sb.policy_set_id, sb.netns, sb.proxy_port, sb.dns_port, sb.transient,
                               sb.owner_pid, sb.owner_start_time, sb.rules});
  return WriteFileAtomically(options_.state_dir + "/state.json", StateFileText(state));
}

Status Registry::Restore() {
  std::lock_guard lock(mu_);
  std::string path = options_.state_dir + "/state.json";
  std::ifstream in(path);
  if (!in) return {};  // first start
  std::stringstream text;
  text << in.rdbuf();
  auto state = ParseStateFile(text.str());
  if (!state.ok()) return EGRESSD_ERROR("{} is corrupt: {}", path, state.status().message());
  next_policy_set_id_ = state->next_policy_set_id;
  for (const SavedSandbox& saved : state->sandboxes) {
    SandboxInfo sb;
    sb.id = saved.id;
    sb.cgroup = saved.cgroup;
    sb.cgroup_id = saved.cgroup_id;
    sb.instance = saved.instance;
    sb.source = saved.source;
    sb.policy_set_id = saved.policy_set_id;
    sb.netns = saved.netns;
    sb.proxy_port = saved.proxy_port;
    sb.dns_port = saved.dns_port;
    sb.transient = saved.transient;
    sb.owner_pid = saved.owner_pid;
    sb.owner_start_time = saved.owner_start_time;
    sb.rules = saved.rules;
    sb.counters = std::make_shared<ProxyCounters>();
    sb.observed = std::make_shared<Observations>();
    sb.generation = next_generation_++;
    sandboxes_[sb.id] = sb;
  }

  for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
    SandboxInfo& sb = it->second;
    auto cgroup = kernel::ResolveCgroup(sb.cgroup, options_.cgroup2_mount);
    if (!cgroup.ok() || cgroup->id != sb.cgroup_id) {
      // The cgroup is gone (the sandbox ended while we were down): forget it.
      spdlog::info("sandbox {}: cgroup {} is gone, forgetting it", sb.instance, sb.cgroup);
      Status st = bpf_->DetachSandbox(sb.id);
      if (!st.ok()) spdlog::warn("registry: {}", st.ToString());
      if (!sb.netns.empty()) kernel::UnpinNetns(sb.netns);
      ca_store_.Remove(sb.instance);
      it = sandboxes_.erase(it);
      continue;
    }
    // The CA the sandbox may have installed: the same one again.
    auto leaves = ca_store_.Load(sb.instance);
    if (leaves.ok()) {
      sb.leaves = *leaves;
    } else {
      spdlog::error("sandbox {}: its CA cannot be loaded, nothing of it will be intercepted: {}",
                    sb.instance, leaves.status().ToString());
    }
    if (!bpf_->SandboxLinksPinned(sb.id)) {
      // Someone removed our pins, or an older build attached fewer programs:
      // attach the missing ones.
      spdlog::warn("sandbox {}: pinned links missing, attaching them", sb.instance);
      int fd = open(sb.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      Status st = fd < 0 ? EGRESSD_ERROR("open {}: {}", sb.cgroup, strerror(errno))
                         : bpf_->AttachMissing(fd, sb.id);
      if (fd >= 0) close(fd);
      if (!st.ok()) spdlog::error("sandbox {}: {}", sb.instance, st.ToString());
    }
    // Listeners again, on the same ports when they are still free.
    SandboxListeners listeners;
    Status opened = OpenListeners(sb, sb.proxy_port, sb.dns_port, &listeners);
    sb.listening = opened.ok();
    if (!opened.ok()) {
      sb.problem = "listeners: " + opened.message();
      spdlog::error("sandbox {}: cannot open its listeners, everything it sends is refused: {}",
                    sb.instance, opened.ToString());
      // Its old ports may be someone else's by now: deny all (a zeroed config).
      Status denied = bpf_->WriteConfig(sb.cgroup_id, egressd_sandbox_config{});
      if (!denied.ok()) spdlog::error("sandbox {}: {}", sb.instance, denied.ToString());
      ++it;
      continue;
    }
    auto policy = LoadPolicySource(sb.source, options_.policy_dir);
    if (!policy.ok()) {
      // Fail closed: deny all in the kernel (a zeroed config) until the file
      // is fixed and reloaded. Keeping the last config would keep its mode
      // (audit lets everything through) and ports that may be gone.
      sb.problem = policy.status().message();
      spdlog::error("sandbox {}: policy {} failed to load, everything it sends is refused: {}",
                    sb.instance, sb.source.Describe(), sb.problem);
      Status denied = bpf_->WriteConfig(sb.cgroup_id, egressd_sandbox_config{});
      if (!denied.ok()) spdlog::error("sandbox {}: {}", sb.instance, denied.ToString());
    } else {
      Status st = ApplyPolicy(sb, *policy);
      if (!st.ok()) {
        sb.problem = st.message();
        spdlog::error("sandbox {}: {}", sb.instance, st.ToString());
      }
    }
    if (sink_) sink_->AddSandboxListeners(sb.id, std::move(listeners));
    spdlog::info("sandbox {} re-adopted: cgroup {} id {}", sb.instance, sb.cgroup, sb.id);
    ++it;
  }
  // Rule sets of the previous daemon that no sandbox points at any more.
  std::set<uint32_t> live;
  for (const auto& [id, sb] : sandboxes_) live.insert(sb.policy_set_id);
  Status pruned = bpf_->PruneCidrRules(live);
  if (!pruned.ok()) spdlog::warn("registry: {}", pruned.ToString());
  std::set<std::string> instances;
  for (const auto& [id, sb] : sandboxes_) instances.insert(sb.instance);
  ca_store_.Prune(instances);
  RestoreObservations();
  Publish();
  return SaveState();
}

Status Registry::SaveObservations() const {
  std::lock_guard lock(mu_);
  return SaveObservationsLocked();
}

Status Registry::SaveObservationsLocked() const {
  std::vector<SavedObservations> out;
  auto add = [&](const std::string& instance, const policy::CompiledPolicy& policy,
                 const Observations& observed, bool finished) {
    // What `suggest` needs of the base policy: its name and deny_cidrs.
    out.push_back(
        {instance, finished, policy.name(), policy.policy().deny_cidrs, observed.Snapshot()});
  };
  for (const auto& f : finished_) add(f.instance, *f.policy, *f.observed, true);
  for (const auto& [id, sb] : sandboxes_)
    if (sb.policy && sb.policy->policy().mode == policy::PolicyMode::kAudit)
      add(sb.instance, *sb.policy, *sb.observed, false);
  return WriteFileAtomically(options_.state_dir + "/observations.json", ObservationsFileText(out));
}

void Registry::RestoreObservations() {
  std::string path = options_.state_dir + "/observations.json";
  std::ifstream in(path);
  if (!in) return;
  std::stringstream text;
  text << in.rdbuf();
  auto entries = ParseObservationsFile(text.str());
  if (!entries.ok()) {
    // Only `suggest` loses its memory; enforcement is not affected.
    spdlog::warn("registry: {} is unreadable, audit-mode observations forgotten: {}", path,
                 entries.status().message());
    return;
  }
  for (const SavedObservations& e : *entries) {
    if (!e.finished) {
      for (auto& [id, sb] : sandboxes_)
        if (sb.instance == e.instance) sb.observed->Merge(e.observed);
      continue;
    }
    policy::Policy base;
    base.name = e.policy_name;
    base.mode = policy::PolicyMode::kAudit;
    base.deny_cidrs = e.deny_cidrs;
    auto observed = std::make_shared<Observations>();
    observed->Merge(e.observed);
    RememberFinished(
        {e.instance, std::make_shared<const policy::CompiledPolicy>(std::move(base)), observed});
  }
}

}  // namespace egressd::sandbox
