#include "policy/cidr.h"

#include <charconv>

namespace egressd::policy {
namespace {

bool BitsEqual(const IpAddress& a, const IpAddress& b, int bits) {
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a.bytes[i] & mask) != (b.bytes[i] & mask)) return false;
  }
  return true;
}

}  // namespace

int Cidr::mapped_prefix_len() const { return network.is_v4() ? 96 + prefix_len : prefix_len; }

bool Cidr::Contains(const IpAddress& addr) const {
  if (network.is_v4() != addr.is_v4()) return false;
  return BitsEqual(network, addr, mapped_prefix_len());
}

std::string Cidr::ToString() const { return network.ToString() + "/" + std::to_string(prefix_len); }

std::optional<Cidr> ParseCidr(std::string_view text, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<Cidr> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  size_t slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  auto addr = IpAddress::Parse(addr_text);
  if (!addr) return fail("\"" + std::string(text) + "\" is not an IP address or CIDR");
  int max = addr->is_v4() ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || prefix < 0 || prefix > max)
      return fail("\"" + std::string(text) + "\": prefix length must be 0.." + std::to_string(max));
  }
  Cidr cidr{*addr, prefix};
  IpAddress masked = *addr;
  int bits = cidr.mapped_prefix_len();
  for (int i = 0; i < 16; ++i, bits -= 8) {
    if (bits >= 8) continue;
    masked.bytes[i] &= bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
  }
  if (masked != *addr) {
    Cidr suggestion{masked, prefix};
    return fail("\"" + std::string(text) + "\" has host bits set; did you mean " +
                suggestion.ToString() + "?");
  }
  return cidr;
}

}  // namespace egressd::policy
