#include "policy/host_glob.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace egressd::policy {
namespace {

constexpr size_t kMaxLabelLength = 63;

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

std::string Quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// IPv6 literal, bare or in brackets, to its inet_ntop form; nullopt if not one.
std::optional<std::string> CanonicalV6(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof(buf)) return std::nullopt;
  memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in6_addr addr{};
  if (inet_pton(AF_INET6, buf, &addr) != 1) return std::nullopt;
  char out[INET6_ADDRSTRLEN];
  if (!inet_ntop(AF_INET6, &addr, out, sizeof(out))) return std::nullopt;
  return std::string(out);
}

// Shared by hosts and patterns. `allow_star` admits '*' as a character.
std::optional<std::string> Normalize(std::string_view text, bool allow_star, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<std::string> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  std::string_view body = text;
  if (!body.empty() && body.back() == '.') body.remove_suffix(1);
  if (body.empty()) return fail("empty host");
  if (body.size() > kMaxHostLength)
    return fail("host longer than " + std::to_string(kMaxHostLength) + " characters");
  if (body.find("://") != std::string_view::npos)
    return fail(Quote(text) + ": a URL; write the host name only, as in \"example.com\"");
  if (std::count(body.begin(), body.end(), ':') == 1 && body.find('[') == std::string_view::npos)
    return fail(Quote(text) + ": a host entry takes no port");
  if (body.find_first_of(":[]") != std::string_view::npos) {
    if (body.find('*') != std::string_view::npos)
      return fail(Quote(text) + ": an IPv6 address cannot be a pattern");
    auto v6 = CanonicalV6(body);
    if (!v6) return fail(Quote(text) + " is not a valid IPv6 address");
    return v6;
  }
  std::string out(body);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (NameChar(c) || (allow_star && c == '*')) continue;
    if (static_cast<unsigned char>(c) >= 0x80)
      return fail(Quote(text) +
                  ": non-ASCII character; write the name in its xn-- (punycode) form");
    if (c == '*') return fail(Quote(text) + ": '*' is not allowed here");
    if (c == ' ' || c == '\t') return fail(Quote(text) + ": contains whitespace");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return fail(Quote(text) + ": contains a control character");
    return fail(Quote(text) + ": invalid character '" + std::string(1, c) + "'");
  }
  if (out.find("**") != std::string::npos)
    return fail(Quote(text) + ": \"**\" in a pattern; a single '*' already matches across dots");
  if (out.front() == '.') {
    if (allow_star) return fail(Quote(text) + ": starts with '.'; did you mean \"*" + out + "\"?");
    return fail(Quote(text) + ": starts with '.'");
  }
  if (out.find("..") != std::string::npos || out.back() == '.')
    return fail(Quote(text) + ": empty label (\"..\")");
  size_t label = 0;
  bool label_has_star = false;
  for (char c : out) {
    if (c == '.') {
      label = 0;
      label_has_star = false;
      continue;
    }
    label_has_star = label_has_star || c == '*';
    if (++label > kMaxLabelLength && !label_has_star)
      return fail(Quote(text) + ": a label is longer than " + std::to_string(kMaxLabelLength) +
                  " characters");
  }
  return out;
}

}  // namespace

std::optional<std::string> NormalizeHost(std::string_view host) {
  return Normalize(host, /*allow_star=*/false, nullptr);
}

std::optional<std::string> NormalizeHostPattern(std::string_view pattern, std::string* error) {
  return Normalize(pattern, /*allow_star=*/true, error);
}

// Iterative matcher with one backtrack point (the last '*'): O(|pattern| *
// |host|) at worst, no recursion. Backtracking to the last star only is
// enough because a later star can absorb whatever an earlier one would.
bool GlobMatch(std::string_view pattern, std::string_view host) {
  size_t p = 0, h = 0, star = std::string_view::npos, mark = 0;
  while (h < host.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = h;
    } else if (p < pattern.size() && pattern[p] == host[h]) {
      ++p;
      ++h;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      h = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::optional<std::string> HostGlobSet::Add(std::string_view pattern) {
  std::string error;
  auto normalized = NormalizeHostPattern(pattern, &error);
  if (!normalized) return error;
  if (normalized->find('*') == std::string::npos) {
    exact_.insert(*normalized);
    return std::nullopt;
  }
  if (std::find(patterns_.begin(), patterns_.end(), *normalized) != patterns_.end())
    return std::nullopt;
  // After every pattern at least as long: longest first, ties in added order.
  auto at = std::upper_bound(
      patterns_.begin(), patterns_.end(), *normalized,
      [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  patterns_.insert(at, std::move(*normalized));
  return std::nullopt;
}

std::optional<std::string> HostGlobSet::Match(std::string_view host) const {
  auto normalized = NormalizeHost(host);
  if (!normalized) return std::nullopt;
  if (exact_.count(*normalized)) return *normalized;
  for (const auto& p : patterns_)
    if (GlobMatch(p, *normalized)) return p;
  return std::nullopt;
}

}  // namespace egressd::policy
