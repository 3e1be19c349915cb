// Small helpers shared by the HTTP parsers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::protocol {

std::string ToLower(std::string_view s);
std::string_view Trim(std::string_view s);

struct Authority {
  std::string host;  // lowercased, [] stripped
  std::optional<uint16_t> port;
};
// "example.com", "example.com:8080", "[::1]:443"; nullopt when malformed.
std::optional<Authority> ParseAuthority(std::string_view text);

}  // namespace egressd::protocol
