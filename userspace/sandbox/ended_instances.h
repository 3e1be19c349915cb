// Sandboxes that ended recently (the last 64): who they were, so kernel
// events that arrive after their cgroup is gone still carry their instance
// name, and their final counters, for `egressctl stats INSTANCE` once a short
// `egressctl run` is over. Written by the registry when a sandbox is
// detached, read by the audit reader and the control API; thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bpf/egressd_shared.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::sandbox {

struct EndedInstance {
  uint32_t sandbox_id = 0;
  std::string instance;
  std::string cgroup;
  std::string policy;  // its name, "" if none was loaded
  egressd_kernel_counters kernel{};
  std::shared_ptr<const ProxyCounters> proxy;  // never null
  int64_t ended_ms = 0;  // set by Add(): wall clock, milliseconds since the epoch
};

class EndedInstances {
 public:
  static constexpr size_t kKept = 64;

  // Remembers `ended`, forgetting the oldest past kKept.
  void Add(EndedInstance ended);
  // The most recent ended sandbox that had this id.
  std::optional<EndedInstance> ById(uint32_t sandbox_id) const;
  // The most recent ended sandbox with this instance name or cgroup path.
  std::optional<EndedInstance> ByName(const std::string& instance_or_cgroup) const;
  // Every one kept, oldest first.
  std::vector<EndedInstance> All() const;

 private:
  mutable std::mutex mu_;
  std::deque<EndedInstance> ended_;  // oldest first
};

}  // namespace egressd::sandbox
