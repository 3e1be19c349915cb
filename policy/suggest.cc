#include "policy/suggest.h"

#include <sstream>

namespace egressd::policy {
namespace {

constexpr size_t kMaxNameLength = 64;

// Entries are host names, addresses and "addr:port": no quote or backslash
// can occur, but quote them anyway so YAML never reads one as a number.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void List(std::ostringstream& out, const char* key, const std::set<std::string>& entries) {
  out << key << ":\n";
  for (const std::string& e : entries) out << "  - " << Quoted(e) << "\n";
}

}  // namespace

std::string SuggestPolicy(const Policy& base, const ObservedTraffic& seen,
                          const std::string& instance) {
  std::string name = base.name.substr(0, kMaxNameLength - 8) + "-learned";
  std::ostringstream out;
  out << "# Suggested by egressd from what instance \"" << instance << "\" did under policy \""
      << base.name << "\" (mode: audit).\n"
      << "# Review it, then enforce it: egressctl run --policy FILE -- CMD\n";
  if (seen.dropped > 0)
    out << "# Warning: " << seen.dropped
        << " observations past egressd's limit were not kept; this list is incomplete.\n";
  for (const std::string& o : seen.other)
    out << "# Seen, and no policy can allow it: " << o << "\n";
  out << "name: " << name << "\n";
  if (seen.hosts.empty()) {
    out << "# No host was named: every host is denied.\n";
    List(out, "denied_hosts", {"*"});
  } else {
    List(out, "allowed_hosts", seen.hosts);
  }
  if (!seen.tcp.empty()) List(out, "allow_tcp", seen.tcp);
  if (!base.allow_get_body.empty()) {
    out << "# Kept from \"" << base.name << "\".\n";
    List(out, "allow_get_body", {base.allow_get_body.begin(), base.allow_get_body.end()});
  }
  if (!base.deny_cidrs.empty()) {
    std::set<std::string> cidrs;
    for (const Cidr& c : base.deny_cidrs) cidrs.insert(c.ToString());
    out << "# Kept from \"" << base.name << "\".\n";
    List(out, "deny_cidrs", cidrs);
  }
  return out.str();
}

}  // namespace egressd::policy
