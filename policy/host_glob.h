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

// Lowercases and strips one trailing dot; nullopt if empty or if it holds
// characters that are in no host name (IPv6 literals with ':' are fine).
std::optional<std::string> NormalizeHost(std::string_view host);

bool GlobMatch(std::string_view pattern, std::string_view host);

class HostGlobSet {
 public:
  // Returns an error for a malformed pattern.
  std::optional<std::string> Add(std::string_view pattern);
  // The entry matching `host`: an exact entry first, else the longest pattern.
  std::optional<std::string> Match(std::string_view host) const;
  bool empty() const { return exact_.empty() && patterns_.empty(); }

 private:
  std::unordered_set<std::string> exact_;
  std::vector<std::string> patterns_;  // longest first
};

}  // namespace egressd::policy
