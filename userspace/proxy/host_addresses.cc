#include "userspace/proxy/host_addresses.h"

#include <ifaddrs.h>
#include <netinet/in.h>

namespace egressd::proxy {
namespace {

std::set<policy::IpAddress> ReadAddresses() {
  std::set<policy::IpAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      out.insert(
          policy::IpAddress::FromV4(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      out.insert(policy::IpAddress::FromV6(
          reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr.s6_addr));
    }
  }
  freeifaddrs(list);
  return out;
}

}  // namespace

bool HostAddresses::Contains(const policy::IpAddress& addr) const {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (now - read_at_ >= refresh_) {
    auto fresh = ReadAddresses();
    // A failed read keeps the last good set rather than allowing everything.
    if (!fresh.empty()) addresses_ = std::move(fresh);
    read_at_ = now;
  }
  return addresses_.count(addr) != 0;
}

}  // namespace egressd::proxy
