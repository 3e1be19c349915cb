#include "policy/host_glob.h"

#include <algorithm>

namespace egressd::policy {
namespace {

bool HostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == ':';
}

}  // namespace

std::optional<std::string> NormalizeHost(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return std::nullopt;
  std::string out(host);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (!HostChar(c)) return std::nullopt;
  }
  return out;
}

// Iterative matcher with one backtrack point: linear in practice, no recursion.
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
  std::string_view body = pattern;
  if (!body.empty() && body.back() == '.') body.remove_suffix(1);
  if (body.empty()) return "empty host pattern";
  if (body.size() > 253) return "host pattern longer than 253 characters";
  if (body.find("**") != std::string_view::npos) return "\"**\" in a host pattern: use a single '*'";
  std::string normalized(body);
  for (char& c : normalized) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (!HostChar(c) && c != '*')
      return "invalid character '" + std::string(1, c) + "' in host pattern \"" + std::string(pattern) + "\"";
  }
  if (normalized.find('*') == std::string::npos) {
    exact_.insert(normalized);
  } else {
    patterns_.push_back(normalized);
    std::stable_sort(patterns_.begin(), patterns_.end(),
                     [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }
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
