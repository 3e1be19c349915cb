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

#include <sys/types.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/kernel/bpf_programs.h"
#include "userspace/kernel/socket_destroyer.h"
#include "userspace/sandbox/ca_store.h"
#include "userspace/sandbox/policy_source.h"
#include "userspace/sandbox/sandbox_listeners.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::sandbox {

class EndedInstances;

struct RegistryOptions {
  std::string state_dir;
  std::string policy_dir;
  std::string cgroup2_mount;
  uint16_t proxy_port = 0;          // the shared proxy listeners of host-namespace sandboxes
  EndedInstances* ended = nullptr;  // told about every sandbox that is detached
  // Called (under the registry's lock; must not call back) after new views
  // were published: the proxy re-decides its open tunnels.
  std::function<void()> views_changed;
};

// Where a sandbox's listeners go once they are open: the proxy workers take
// the proxy sockets, the DNS forwarder the DNS sockets.
class ListenerSink {
 public:
  virtual ~ListenerSink() = default;
  virtual void AddSandboxListeners(uint32_t sandbox_id, SandboxListeners listeners) = 0;
  virtual void RemoveSandboxListeners(uint32_t sandbox_id) = 0;
};

struct AttachRequest {
  std::string cgroup;  // path, absolute or relative to the cgroup2 mount
  PolicySource source;
  std::string instance;  // default: the cgroup's directory name
  // Network namespace: "" detects it from the cgroup's processes, "host" is
  // the daemon's, anything else a path (/proc/PID/ns/net, /run/netns/NAME).
  std::string netns;
  // `egressctl run`: the daemon owns the cgroup. Detach kills what is left in
  // it and removes it; so does the daemon when owner_pid dies first.
  bool transient = false;
  pid_t owner_pid = 0;
};

struct SandboxInfo {
  uint32_t id = 0;
  uint64_t generation = 0;
  std::string cgroup;
  uint64_t cgroup_id = 0;
  std::string instance;
  PolicySource source;
  uint32_t policy_set_id = 0;
  // Compiled with `rules` for this instance; null if it failed to load on restore.
  std::shared_ptr<const policy::CompiledPolicy> policy;
  // What `egressctl handler` and `egressctl hosts` changed for this instance
  // (kept in state.json; gone at detach).
  policy::InstanceRules rules;
  std::shared_ptr<ProxyCounters> counters;
  std::shared_ptr<Observations> observed;
  // Its CA and the leaves it signs (ca_store.h); null if it could not be loaded.
  std::shared_ptr<ca::LeafCache> leaves;
  std::string problem;        // why the sandbox is refusing everything, if it is
  std::string netns;          // "" for the daemon's namespace, else egressd's pin of it
  uint64_t netns_cookie = 0;  // of that namespace, once its listeners are open
  uint16_t proxy_port = 0;
  uint16_t dns_port = 0;
  // Its listeners are open and served. Without them (a restart could not
  // reopen them) the sandbox stays denied everything: no policy turns it on.
  bool listening = false;
  bool transient = false;
  pid_t owner_pid = 0;
  uint64_t owner_start_time = 0;  // tells a reused pid from the owner
};

struct AttachResult {
  SandboxInfo sandbox;
  bool switched = false;  // the cgroup was attached already; its policy changed
  // What the sandbox can still do that no cgroup hook sees (for the operator).
  std::vector<std::string> warnings;
  // Its sockets that were opened before the attach (and so never hooked).
  kernel::SocketSweep sockets;
};

class Registry : public SandboxDirectory {
 public:
  Registry(RegistryOptions options, kernel::BpfPrograms* bpf);

  // Re-adopts the sandboxes recorded in the state dir (after a restart).
  Status Restore();

  // Called once, before Restore() and any Attach().
  void SetListenerSink(ListenerSink* sink) { sink_ = sink; }

  StatusOr<AttachResult> Attach(const AttachRequest& request);
  // By cgroup path or instance name.
  Status Detach(const std::string& cgroup_or_instance);
  // Detaches transient sandboxes whose owner process is gone. Returns how many.
  size_t ReapOrphans();
  // `policy suggest`: a policy allowing what an audit-mode instance did
  // (attached now, or one of the last instances that ended).
  StatusOr<std::string> Suggest(const std::string& instance) const;
  // `egressctl handler` / `egressctl hosts`: `change` edits a copy of the
  // instance's runtime rules (it may refuse, seeing the policy they go
  // with); the instance then follows them from its next connection and next
  // request, its open tunnels are decided again, and they are saved.
  // Returns the sandbox as it is now.
  using RulesChange =
      std::function<Status(policy::InstanceRules& rules, const policy::CompiledPolicy& policy)>;
  StatusOr<SandboxInfo> ChangeInstanceRules(const std::string& instance, const RulesChange& change);
  // The sandbox of an attached instance.
  StatusOr<SandboxInfo> FindInstance(const std::string& instance) const;
  // `egressctl ca`: the CA certificate (PEM) of an attached instance.
  StatusOr<std::string> CaCertificate(const std::string& instance) const;
  // Writes what audit-mode instances did to the state dir, so `suggest`
  // survives a restart (on detach, at stop, and every few seconds).
  Status SaveObservations() const;
  // Re-reads every sandbox's policy; all or nothing.
  StatusOr<size_t> ReloadPolicies();

  std::vector<SandboxInfo> List() const;
  // The instance whose cgroup is `cgroup_path` or one of its ancestors.
  std::optional<std::string> SandboxContaining(const std::string& cgroup_path) const;
  std::shared_ptr<const SandboxView> Find(uint32_t sandbox_id) const override;
  bool IsListenerPort(uint16_t port) const override;

 private:
  // `policy` as loaded (no instance rules): compiled again with sb.rules.
  Status ApplyPolicy(SandboxInfo& sb, std::shared_ptr<const policy::CompiledPolicy> policy);
  Status WriteRules(const policy::Policy& policy, uint32_t set_id);
  void DeleteRules(const policy::Policy& policy, uint32_t set_id);
  Status WriteConfig(const SandboxInfo& sb, const policy::Policy& policy);
  Status OpenListeners(SandboxInfo& sb, uint16_t want_proxy, uint16_t want_dns,
                       SandboxListeners* out);
  Status DetachLocked(SandboxInfo& sb);
  // A private copy (in the state dir) of a transient sandbox's policy file.
  StatusOr<std::string> SnapshotPolicyFile(const std::string& file, uint64_t cgroup_id);
  void Publish();
  Status SaveState() const;
  Status SaveObservationsLocked() const;
  void RestoreObservations();
  // A valid name (a path component) that no attached sandbox has.
  Status CheckNewInstance(const std::string& instance) const;
  uint32_t AllocateId();
  SandboxInfo* FindByCgroup(const std::string& path);

  RegistryOptions options_;
  kernel::BpfPrograms* bpf_;
  CaStore ca_store_;
  mutable std::mutex mu_;  // control plane
  std::map<uint32_t, SandboxInfo> sandboxes_;
  uint32_t next_policy_set_id_ = 1;
  uint64_t next_generation_ = 1;
  uint32_t next_id_hint_ = 1;  // ids are handed out round-robin, not lowest-free

  ListenerSink* sink_ = nullptr;

  // What audit-mode instances that ended did, for `policy suggest` (bounded).
  struct Finished {
    std::string instance;
    std::shared_ptr<const policy::CompiledPolicy> policy;
    std::shared_ptr<Observations> observed;
  };
  std::deque<Finished> finished_;
  static constexpr size_t kFinishedKept = 64;
  // Keeps `finished` for `policy suggest`, forgetting the oldest past kFinishedKept.
  void RememberFinished(Finished finished);
  // `loaded` (a policy as loaded) compiled again for one instance with its runtime rules.
  static std::shared_ptr<const policy::CompiledPolicy> WithInstanceRules(
      const policy::CompiledPolicy& loaded, const policy::InstanceRules& rules,
      const std::string& instance);

  mutable std::mutex views_mu_;  // data plane: held only to copy a pointer
  std::shared_ptr<const std::map<uint32_t, std::shared_ptr<const SandboxView>>> views_;
  std::shared_ptr<const std::set<uint16_t>> listener_ports_;
};

}  // namespace egressd::sandbox
