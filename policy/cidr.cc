#include "policy/cidr.h"

#include <charconv>

namespace egressd::policy {
namespace {

// Clears every bit after the first `bits` of the 128-bit form.
IpAddress Masked(IpAddress addr, int bits) {
  for (int i = 0; i < 16; ++i, bits -= 8) {
    if (bits >= 8) continue;
    addr.bytes[i] &= bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
  }
  return addr;
}

}  // namespace

int Cidr::mapped_prefix_len() const {
  return network.is_v4() ? 96 + prefix_len : prefix_len;
}

bool Cidr::Contains(const IpAddress& addr) const {
  // Families stay apart: "::/0" does not hold IPv4 addresses, "0.0.0.0/0"
  // holds no IPv6 ones.
  if (network.is_v4() != addr.is_v4()) return false;
  return Masked(addr, mapped_prefix_len()) == network;
}

std::string Cidr::ToString() const {
  return network.ToString() + "/" + std::to_string(prefix_len);
}

std::optional<Cidr> ParseCidr(std::string_view text, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<Cidr> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  const std::string quoted = "\"" + std::string(text) + "\"";
  size_t slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  auto addr = IpAddress::Parse(addr_text);
  if (!addr) return fail(quoted + " is not an IP address or CIDR");
  // The family is how the address is written: "::ffff:10.0.0.0/104" is an
  // IPv6 prefix over the v4-mapped range, stored as 10.0.0.0/8.
  bool written_v6 = addr_text.find(':') != std::string_view::npos;
  int max = written_v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || prefix < 0 || prefix > max)
      return fail(quoted + ": prefix length must be 0.." + std::to_string(max));
  }
  int bits = written_v6 ? prefix : 96 + prefix;
  IpAddress masked = Masked(*addr, bits);
  if (masked != *addr) {
    std::string suggestion;
    if (written_v6) {
      char buf[8];
      auto end = std::to_chars(buf, buf + sizeof(buf), prefix).ptr;
      suggestion = (masked.is_v4() ? "::ffff:" : "") + masked.ToString() + "/" +
                   std::string(buf, static_cast<size_t>(end - buf));
    } else {
      suggestion = Cidr{masked, prefix}.ToString();
    }
    return fail(quoted + " has host bits set; did you mean " + suggestion + "?");
  }
  // Host bits are clear, so a v4-mapped network written as IPv6 has prefix >= 96.
  if (written_v6 && masked.is_v4()) prefix -= 96;
  return Cidr{masked, prefix};
}

}  // namespace egressd::policy
