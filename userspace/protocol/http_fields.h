// Small, strict helpers for HTTP/1.x header fields shared by the request and
// response parsers. Internal to egressd_protocol but usable by tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace egressd::protocol {

// RFC 9110 tchar.
bool IsTokenChar(uint8_t c);
bool IsToken(std::string_view s);
// True if s holds a control character other than HTAB (incl. NUL and DEL).
bool HasControlChar(std::string_view s);
// Strips leading and trailing SP / HTAB.
std::string_view TrimOws(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLower(std::string_view s);

// Content-Length = 1*DIGIT, at most 15 digits (no sign, no list, no spaces).
std::optional<uint64_t> ParseContentLength(std::string_view value);

struct HostPort {
  std::string host;  // lowercased; IPv6 without brackets; no trailing dot
  std::optional<uint16_t> port;
};

// Parses a Host header value / URI authority: reg-name or IPv4 (DNS
// characters [a-z0-9-._], labels 1..63, at most 253 characters, one trailing
// dot stripped) or "[IPv6]", optionally ":port" (1..65535). No userinfo.
// On failure returns nullopt and sets *why.
std::optional<HostPort> ParseHostPort(std::string_view value, std::string* why);

}  // namespace egressd::protocol
