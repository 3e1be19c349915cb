#include "userspace/protocol/http_fields.h"

#include <arpa/inet.h>

namespace egressd::protocol {

bool IsTokenChar(uint8_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(static_cast<uint8_t>(c))) return false;
  }
  return true;
}

bool HasControlChar(std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<uint8_t>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

static char Lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

std::optional<uint64_t> ParseContentLength(std::string_view value) {
  if (value.empty() || value.size() > 15) return std::nullopt;
  uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

namespace {

bool ParsePort(std::string_view s, uint16_t* port) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint32_t>(c - '0');
  }
  if (n == 0 || n > 65535) return false;
  *port = static_cast<uint16_t>(n);
  return true;
}

bool ValidRegName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t label = 0;
  for (char ch : h) {
    auto c = static_cast<uint8_t>(ch);
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label != 0;
}

}  // namespace

std::optional<HostPort> ParseHostPort(std::string_view value, std::string* why) {
  HostPort out;
  std::string_view rest;
  if (value.empty()) {
    *why = "empty Host";
    return std::nullopt;
  }
  if (value.front() == '[') {
    size_t close = value.find(']');
    if (close == std::string_view::npos) {
      *why = "invalid Host: unterminated IPv6 literal";
      return std::nullopt;
    }
    std::string inner = ToLower(value.substr(1, close - 1));
    in6_addr addr;
    if (inner.empty() || inner.size() > 45 || inet_pton(AF_INET6, inner.c_str(), &addr) != 1) {
      *why = "invalid Host: bad IPv6 literal";
      return std::nullopt;
    }
    out.host = std::move(inner);
    rest = value.substr(close + 1);
  } else {
    size_t colon = value.find(':');
    std::string_view name = value.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : value.substr(colon);
    std::string host = ToLower(name);
    if (!host.empty() && host.back() == '.') host.pop_back();
    if (!ValidRegName(host)) {
      *why = "invalid Host: not a DNS name or address";
      return std::nullopt;
    }
    out.host = std::move(host);
  }
  if (!rest.empty()) {
    uint16_t port;
    if (rest.front() != ':' || !ParsePort(rest.substr(1), &port)) {
      *why = "invalid Host: bad port";
      return std::nullopt;
    }
    out.port = port;
  }
  return out;
}

}  // namespace egressd::protocol
