// RAII over the egressd BPF skeleton: loads the programs, pins (or re-adopts)
// the maps under the bpffs directory, attaches a sandbox cgroup with pinned
// links, and gives typed access to every map. The layout under `pin_dir`:
//
//   maps/<map name>             every map, reused by a restarted daemon
//   links/<sandbox id>/<prog>   one pinned link per program per sandbox
//
// Pinned links keep the programs attached when the daemon dies: sandboxes then
// get ECONNREFUSED from the closed proxy port (fail closed) until it returns.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bpf/egressd_shared.h"
#include "userspace/common/status.h"

struct egressd_bpf;

namespace egressd::kernel {

class BpfPrograms {
 public:
  // Loads the programs and opens the maps, reusing pinned maps of an earlier
  // daemon when present (an incompatible pinned map is an error, not replaced).
  static StatusOr<std::unique_ptr<BpfPrograms>> Load(const std::string& pin_dir);
  // Makes sure `pin_dir` exists on bpffs (mounting /sys/fs/bpf if needed).
  static Status PreparePinDir(const std::string& pin_dir);
  ~BpfPrograms();
  BpfPrograms(const BpfPrograms&) = delete;
  BpfPrograms& operator=(const BpfPrograms&) = delete;

  // Attaches every program to the cgroup and pins the links. The sandbox's
  // storage starts zeroed, so it denies everything until WriteConfig.
  Status AttachCgroup(int cgroup_fd, uint32_t sandbox_id);
  // Detaches and unpins every link of the sandbox (also after a restart).
  Status DetachSandbox(uint32_t sandbox_id);
  // True when all of the sandbox's links are pinned (used when re-adopting).
  bool SandboxLinksPinned(uint32_t sandbox_id) const;

  Status WriteConfig(uint64_t cgroup_id, const egressd_sandbox_config& config);
  Status PutCidrRule(const egressd_cidr_key& key, const egressd_cidr_value& value);
  Status DeleteCidrRule(const egressd_cidr_key& key);
  // Deletes every deny_cidrs entry whose policy set is not in `live_sets`.
  Status PruneCidrRules(const std::set<uint32_t>& live_sets);

  Status ResetCounters(uint32_t sandbox_id);
  StatusOr<egressd_kernel_counters> ReadCounters(uint32_t sandbox_id) const;
  uint64_t ReadGlobalCounter(egressd_global_counter counter) const;

  // Looks up and deletes the original destination recorded at connect().
  std::optional<egressd_orig_dst> TakeOrigDst(const egressd_orig_dst_key& key) const;
  // Entries currently in the original-destination map (status, tests).
  size_t CountOrigDst() const;

  int events_map_fd() const;
  const std::string& pin_dir() const { return pin_dir_; }

 private:
  BpfPrograms(std::string pin_dir, egressd_bpf* skel) : pin_dir_(std::move(pin_dir)), skel_(skel) {}
  std::string LinkDir(uint32_t sandbox_id) const;

  std::string pin_dir_;
  egressd_bpf* skel_;
  int ncpus_ = 1;
};

}  // namespace egressd::kernel
