// --max-connections-per-sandbox: a sandbox holds at most that many proxied
// connections at once. A ConnectionSlot is one of them, held by a Connection
// from the moment its sandbox is known until the Connection is freed; past
// the limit a new connection is refused at once, before any upstream work,
// so a sandbox that floods the shared listeners costs an accept and a close
// per connection and takes nothing from the other sandboxes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "userspace/sandbox/sandbox_view.h"

namespace egressd::proxy {

class ConnectionSlot {
 public:
  // One of the sandbox's `max` slots, or nullopt when all are taken (the
  // refusal is counted in `connections_refused_limit`).
  static std::optional<ConnectionSlot> Take(std::shared_ptr<sandbox::ProxyCounters> counters,
                                            uint64_t max);
  ConnectionSlot(ConnectionSlot&& other) noexcept = default;
  ConnectionSlot& operator=(ConnectionSlot&& other) noexcept;
  ~ConnectionSlot();

 private:
  explicit ConnectionSlot(std::shared_ptr<sandbox::ProxyCounters> counters)
      : counters_(std::move(counters)) {}
  void Release();

  std::shared_ptr<sandbox::ProxyCounters> counters_;  // null once moved from
};

// Whether a refusal at the limit is recorded as an event now: the first of
// each second per sandbox (the counter has every one).
bool LimitEventDue(sandbox::ProxyCounters& counters);

}  // namespace egressd::proxy
