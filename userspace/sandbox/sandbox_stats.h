// Every sandbox's figures, gathered in one place for the two readers of
// them: `egressctl stats` (the control API) and the metrics a scrape of
// `--metrics-listen` gets. Attached sandboxes: their kernel counters read
// from the BPF map now, their proxy counters as the workers keep them.
// Ended ones (the last EndedInstances::kKept): their final figures.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bpf/egressd_shared.h"
#include "userspace/sandbox/ended_instances.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::kernel {
class BpfPrograms;
}

namespace egressd::sandbox {

class Registry;

struct SandboxStats {
  std::string instance;
  std::string cgroup;
  std::string policy;  // its name, "" if none is loaded
  egressd_kernel_counters kernel{};
  std::shared_ptr<const ProxyCounters> proxy;  // never null
  bool ended = false;
  int64_t ended_ms = 0;  // when it ended (wall clock, ms since the epoch)
};

// The attached sandboxes (a kernel counter that cannot be read is zero).
std::vector<SandboxStats> AttachedSandboxStats(const Registry& registry,
                                               const kernel::BpfPrograms& bpf);
SandboxStats EndedSandboxStats(const EndedInstance& ended);
// Attached, then ended ones: a sandbox that ends while this runs is listed
// once (an ended entry that shares an attached one's counters is left out).
std::vector<SandboxStats> AllSandboxStats(const Registry& registry, const kernel::BpfPrograms& bpf,
                                          const EndedInstances& ended);

}  // namespace egressd::sandbox
