#include "policy/compiled_policy.h"

namespace egressd::policy {

CompiledPolicy::CompiledPolicy(Policy policy) : policy_(std::move(policy)) {
  // The loader validated every entry; Add cannot fail here.
  for (const auto& h : policy_.allowed_hosts) allowed_.Add(h);
  for (const auto& h : policy_.denied_hosts) denied_.Add(h);
}

HostDecision CompiledPolicy::DecideHost(std::string_view host) const {
  auto normalized = NormalizeHost(host);
  if (!normalized) return {HostVerdict::kDenied, "not a valid host name", std::nullopt};
  if (auto m = denied_.Match(*normalized))
    return {HostVerdict::kDenied, "denied_hosts entry \"" + *m + "\"", m};
  if (allowed_.empty()) return {HostVerdict::kAllowed, "no allowed_hosts: allow by default", std::nullopt};
  if (auto m = allowed_.Match(*normalized))
    return {HostVerdict::kAllowed, "allowed_hosts entry \"" + *m + "\"", m};
  return {HostVerdict::kDenied, "not in allowed_hosts (deny by default)", std::nullopt};
}

bool CompiledPolicy::AllowTcpByAddress(const IpAddress& addr, uint16_t port) const {
  for (const auto& r : policy_.allow_tcp)
    if (r.cidr && r.port == port && r.cidr->Contains(addr)) return true;
  return false;
}

std::vector<std::string> CompiledPolicy::AllowTcpHostsForPort(uint16_t port) const {
  std::vector<std::string> hosts;
  for (const auto& r : policy_.allow_tcp)
    if (r.host && r.port == port) hosts.push_back(*r.host);
  return hosts;
}

}  // namespace egressd::policy
