#include "userspace/sandbox/sandbox_stats.h"

#include <algorithm>

#include "userspace/kernel/bpf_programs.h"
#include "userspace/sandbox/registry.h"

namespace egressd::sandbox {

std::vector<SandboxStats> AttachedSandboxStats(const Registry& registry,
                                               const kernel::BpfPrograms& bpf) {
  std::vector<SandboxStats> out;
  for (const auto& sb : registry.List()) {
    auto kernel = bpf.ReadCounters(sb.id);
    out.push_back({.instance = sb.instance,
                   .cgroup = sb.cgroup,
                   .policy = sb.policy ? sb.policy->name() : std::string(),
                   .kernel = kernel.ok() ? *kernel : egressd_kernel_counters{},
                   .proxy = sb.counters ? sb.counters : std::make_shared<ProxyCounters>()});
  }
  return out;
}

SandboxStats EndedSandboxStats(const EndedInstance& ended) {
  return {.instance = ended.instance,
          .cgroup = ended.cgroup,
          .policy = ended.policy,
          .kernel = ended.kernel,
          .proxy = ended.proxy ? ended.proxy : std::make_shared<const ProxyCounters>(),
          .ended = true,
          .ended_ms = ended.ended_ms};
}

std::vector<SandboxStats> AllSandboxStats(const Registry& registry, const kernel::BpfPrograms& bpf,
                                          const EndedInstances& ended) {
  // Attached first: a sandbox that ends meanwhile is already in `ended`
  // when that is read (the registry records it there before it lets go).
  std::vector<SandboxStats> out = AttachedSandboxStats(registry, bpf);
  size_t attached = out.size();
  for (const auto& e : ended.All()) {
    bool listed = std::any_of(out.begin(), out.begin() + attached,
                              [&](const SandboxStats& s) { return s.proxy == e.proxy; });
    if (!listed) out.push_back(EndedSandboxStats(e));
  }
  return out;
}

}  // namespace egressd::sandbox
