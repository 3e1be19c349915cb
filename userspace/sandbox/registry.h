// The attached sandboxes: who they are, which policy each follows, and the
// kernel state that enforces it. Control-plane calls (attach, detach, reload)
// are serialized by one mutex; the data plane reads immutable SandboxViews.
//
// Attach order keeps the sandbox fail closed at every step: programs attach
// with a zeroed config (deny all), rules are written, then the config that
// turns redirection on. A policy switch writes the new rule set under a new
// policy_set_id and flips the config in one map update, so the kernel never
// sees a half-written rule set.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/kernel/bpf_programs.h"
#include "userspace/sandbox/policy_source.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::sandbox {

struct RegistryOptions {
  std::string state_dir;
  std::string policy_dir;
  std::string cgroup2_mount;
  uint16_t proxy_port = 0;
  uint16_t dns_port = 0;
};

struct SandboxInfo {
  uint32_t id = 0;
  uint64_t generation = 0;
  std::string cgroup;
  uint64_t cgroup_id = 0;
  std::string instance;
  PolicySource source;
  uint32_t policy_set_id = 0;
  std::shared_ptr<const policy::CompiledPolicy> policy;  // null if it failed to load on restore
  std::shared_ptr<ProxyCounters> counters;
  std::string problem;  // why the sandbox is refusing everything, if it is
};

struct AttachResult {
  SandboxInfo sandbox;
  bool switched = false;  // the cgroup was attached already; its policy changed
};

class Registry : public SandboxDirectory {
 public:
  Registry(RegistryOptions options, kernel::BpfPrograms* bpf);

  // Re-adopts the sandboxes recorded in the state dir (after a restart).
  Status Restore();

  StatusOr<AttachResult> Attach(const std::string& cgroup_spec, const PolicySource& source,
                                const std::string& instance);
  Status Detach(const std::string& cgroup_spec);
  // Re-reads every sandbox's policy; all or nothing.
  StatusOr<size_t> ReloadPolicies();

  std::vector<SandboxInfo> List() const;
  std::shared_ptr<const SandboxView> Find(uint32_t sandbox_id) const override;

 private:
  Status ApplyPolicy(SandboxInfo& sb, std::shared_ptr<const policy::CompiledPolicy> policy);
  Status WriteRules(const policy::Policy& policy, uint32_t set_id);
  void DeleteRules(const policy::Policy& policy, uint32_t set_id);
  Status WriteConfig(const SandboxInfo& sb);
  void Publish();
  Status SaveState() const;
  uint32_t AllocateId();
  SandboxInfo* FindByCgroup(const std::string& path);

  RegistryOptions options_;
  kernel::BpfPrograms* bpf_;
  mutable std::mutex mu_;  // control plane
  std::map<uint32_t, SandboxInfo> sandboxes_;
  uint32_t next_policy_set_id_ = 1;
  uint64_t next_generation_ = 1;
  uint32_t next_id_hint_ = 1;  // ids are handed out round-robin, not lowest-free

  mutable std::mutex views_mu_;  // data plane: held only to copy a pointer
  std::shared_ptr<const std::map<uint32_t, std::shared_ptr<const SandboxView>>> views_;
};

}  // namespace egressd::sandbox
