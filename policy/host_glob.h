// Host globs, the hosted-sandbox convention: case-insensitive, one trailing
// dot ignored, '*' matches any run of characters including dots (and none),
// "*.example.com" does not match "example.com", an exact entry beats a pattern.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace egressd::policy {

constexpr size_t kMaxHostLength = 253;

// The host of a connection (SNI, HTTP Host without port) in the one form the
// matcher compares: lowercase, one trailing dot stripped, an IPv6 literal
// (bare or in brackets) in its inet_ntop form without brackets. nullopt for
// anything that is no host: empty, longer than 253, characters outside
// [a-z0-9-._], an empty label or one longer than 63, and '*' (a wildcard is
// never a real host, so it cannot slip through a pattern).
std::optional<std::string> NormalizeHost(std::string_view host);

// The same for an allowed_hosts/denied_hosts entry, where '*' is allowed
// (not "**", not in an IPv6 literal). nullopt with `error` set when malformed.
std::optional<std::string> NormalizeHostPattern(std::string_view pattern, std::string* error);

// '*' matches any run of characters, dots included, or none. Both arguments
// already normalized.
bool GlobMatch(std::string_view pattern, std::string_view host);

class HostGlobSet {
 public:
  // Adds an entry (normalized inside); an error for a malformed pattern.
  // Adding an entry twice is harmless.
  std::optional<std::string> Add(std::string_view pattern);
  // The normalized entry matching `host` (normalized inside): an exact entry
  // first, else the longest pattern, the first added among equally long ones.
  // nullopt if none matches or `host` is no valid host.
  std::optional<std::string> Match(std::string_view host) const;
  bool empty() const { return exact_.empty() && patterns_.empty(); }

 private:
  std::unordered_set<std::string> exact_;
  std::vector<std::string> patterns_;  // longest first
};

}  // namespace egressd::policy
