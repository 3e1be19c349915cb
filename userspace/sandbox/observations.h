// What a sandbox in audit mode did: the hosts it named (SNI, Host, DNS), the
// TCP destinations it reached by address, and what no policy can allow (UDP,
// socket types). Filled by the data plane, read by `egressctl policy
// suggest`. Bounded: past the limit new entries are counted, not kept.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "policy/suggest.h"

namespace egressd::sandbox {

class Observations {
 public:
  static constexpr size_t kMaxEntries = 4096;  // per kind

  void Host(const std::string& host) { Add(&policy::ObservedTraffic::hosts, host); }
  void Tcp(const std::string& address_port) { Add(&policy::ObservedTraffic::tcp, address_port); }
  void Unexpressible(const std::string& what) { Add(&policy::ObservedTraffic::other, what); }
  policy::ObservedTraffic Snapshot() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  // What a previous daemon had recorded (read back from the state dir).
  void Merge(const policy::ObservedTraffic& earlier) {
    for (const auto& h : earlier.hosts) Host(h);
    for (const auto& t : earlier.tcp) Tcp(t);
    for (const auto& o : earlier.other) Unexpressible(o);
    std::lock_guard lock(mu_);
    seen_.dropped += earlier.dropped;
  }

 private:
  void Add(std::set<std::string> policy::ObservedTraffic::*kind, const std::string& entry) {
    std::lock_guard lock(mu_);
    auto& set = seen_.*kind;
    if (set.size() < kMaxEntries || set.count(entry))
      set.insert(entry);
    else
      seen_.dropped++;
  }

  mutable std::mutex mu_;
  policy::ObservedTraffic seen_;
};

}  // namespace egressd::sandbox
