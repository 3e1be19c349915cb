// The addresses of the daemon's own network namespace (every interface, from
// getifaddrs). A sandbox in a namespace of its own must not reach the host
// through egressd: its connections to these are refused, as to loopback.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <set>

#include "policy/ip_address.h"

namespace egressd::proxy {

class AddressSet {
 public:
  virtual ~AddressSet() = default;
  virtual bool Contains(const policy::IpAddress& addr) const = 0;
};

// Re-read at most every `refresh` (interfaces come and go); thread-safe.
class HostAddresses : public AddressSet {
 public:
  explicit HostAddresses(std::chrono::milliseconds refresh = std::chrono::seconds(2))
      : refresh_(refresh) {}
  bool Contains(const policy::IpAddress& addr) const override;

 private:
  std::chrono::milliseconds refresh_;
  mutable std::mutex mu_;
  mutable std::chrono::steady_clock::time_point read_at_{};
  mutable std::set<policy::IpAddress> addresses_;
};

}  // namespace egressd::proxy
