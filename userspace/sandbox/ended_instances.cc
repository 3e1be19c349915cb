#include "userspace/sandbox/ended_instances.h"

#include <chrono>

namespace egressd::sandbox {

void EndedInstances::Add(EndedInstance ended) {
  if (!ended.proxy) ended.proxy = std::make_shared<const ProxyCounters>();
  ended.ended_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::lock_guard lock(mu_);
  ended_.push_back(std::move(ended));
  if (ended_.size() > kKept) ended_.pop_front();
}

std::optional<EndedInstance> EndedInstances::ById(uint32_t sandbox_id) const {
  std::lock_guard lock(mu_);
  for (auto it = ended_.rbegin(); it != ended_.rend(); ++it)
    if (it->sandbox_id == sandbox_id) return *it;
  return std::nullopt;
}

std::optional<EndedInstance> EndedInstances::ByName(const std::string& instance_or_cgroup) const {
  std::lock_guard lock(mu_);
  for (auto it = ended_.rbegin(); it != ended_.rend(); ++it)
    if (it->instance == instance_or_cgroup || it->cgroup == instance_or_cgroup) return *it;
  return std::nullopt;
}

std::vector<EndedInstance> EndedInstances::All() const {
  std::lock_guard lock(mu_);
  return {ended_.begin(), ended_.end()};
}

}  // namespace egressd::sandbox
