#include "userspace/protocol/http_fields.h"

#include <charconv>

namespace egressd::protocol {

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<Authority> ParseAuthority(std::string_view text) {
  Authority a;
  std::string_view host = text, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return std::nullopt;
      port = rest.substr(1);
      if (port.empty()) return std::nullopt;
    }
    for (char c : host)
      if (!(isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return std::nullopt;
  } else {
    size_t colon = text.find(':');
    if (colon != std::string_view::npos) {
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
      if (port.empty()) return std::nullopt;
    }
    for (char c : host)
      if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'))
        return std::nullopt;
  }
  if (host.empty() || host.size() > 253) return std::nullopt;
  if (!port.empty()) {
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || ptr != port.data() + port.size() || v == 0 || v > 65535) return std::nullopt;
    a.port = static_cast<uint16_t>(v);
  }
  a.host = ToLower(host);
  return a;
}

}  // namespace egressd::protocol
