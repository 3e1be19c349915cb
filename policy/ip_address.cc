#include "policy/ip_address.h"

#include <arpa/inet.h>

#include <cstring>

namespace egressd::policy {

bool IpAddress::is_v4() const {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(bytes.data(), kPrefix, 12) == 0;
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in_addr v4{};
  if (inet_pton(AF_INET, buf, &v4) == 1) return FromV4(v4.s_addr);
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    IpAddress a;
    memcpy(a.bytes.data(), &v6, 16);
    return a;
  }
  return std::nullopt;
}

IpAddress IpAddress::FromV4(uint32_t addr_network_order) {
  IpAddress a;
  a.bytes[10] = a.bytes[11] = 0xff;
  memcpy(a.bytes.data() + 12, &addr_network_order, 4);
  return a;
}

IpAddress IpAddress::FromV6(const uint8_t (&addr)[16]) {
  IpAddress a;
  memcpy(a.bytes.data(), addr, 16);
  return a;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = "";
  if (is_v4()) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  }
  return buf;
}

}  // namespace egressd::policy
