// CIDR blocks of either family, as deny_cidrs and allow_tcp use them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "policy/ip_address.h"

namespace egressd::policy {

struct Cidr {
  IpAddress network;   // host bits cleared
  int prefix_len = 0;  // as written: 0..32 for IPv4, 0..128 for IPv6
  // Families stay apart: an IPv4 block holds only IPv4 (v4-mapped) addresses,
  // and an IPv6 block none of them, even "::/0".
  bool Contains(const IpAddress& addr) const;
  int mapped_prefix_len() const;  // over the 128-bit form: IPv4 -> 96 + prefix_len
  std::string ToString() const;
  bool operator==(const Cidr&) const = default;
};

// "10.0.0.0/8", "fd00::/8"; a bare address is /32 or /128. Host bits set is
// an error (a typo more often than not), with the network suggested. A
// v4-mapped block written as IPv6 ("::ffff:10.0.0.0/104") becomes IPv4
// (10.0.0.0/8).
std::optional<Cidr> ParseCidr(std::string_view text, std::string* error);

}  // namespace egressd::policy
