#include "userspace/proxy/connection_slot.h"

#include <chrono>

namespace egressd::proxy {

std::optional<ConnectionSlot> ConnectionSlot::Take(std::shared_ptr<sandbox::ProxyCounters> counters,
                                                   uint64_t max) {
  // Workers take slots concurrently: one that would go past `max` gives its
  // increment back, so never more than `max` are held.
  if (counters->open_connections.fetch_add(1) >= max) {
    counters->open_connections--;
    counters->connections_refused_limit++;
    return std::nullopt;
  }
  return ConnectionSlot(std::move(counters));
}

ConnectionSlot& ConnectionSlot::operator=(ConnectionSlot&& other) noexcept {
  if (this != &other) {
    Release();
    counters_ = std::move(other.counters_);
  }
  return *this;
}

ConnectionSlot::~ConnectionSlot() {
  Release();
}

void ConnectionSlot::Release() {
  if (counters_) counters_->open_connections--;
  counters_.reset();
}

bool LimitEventDue(sandbox::ProxyCounters& counters) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t last = counters.limit_event_second.load();
  return last != now && counters.limit_event_second.compare_exchange_strong(last, now);
}

}  // namespace egressd::proxy
