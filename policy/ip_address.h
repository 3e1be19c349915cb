// An IP address in one form for both families: 16 bytes, IPv4 as v4-mapped
// (::ffff:a.b.c.d), which is also how the BPF programs store addresses.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::policy {

struct IpAddress {
  std::array<uint8_t, 16> bytes{};

  bool is_v4() const;
  // "1.2.3.4", "::1", "::ffff:1.2.3.4"; no brackets, port or zone.
  static std::optional<IpAddress> Parse(std::string_view text);
  static IpAddress FromV4(uint32_t addr_network_order);
  static IpAddress FromV6(const uint8_t (&addr)[16]);
  std::string ToString() const;  // IPv4 dotted, IPv6 as inet_ntop
  auto operator<=>(const IpAddress&) const = default;
};

}  // namespace egressd::policy
