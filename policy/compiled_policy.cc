#include "policy/compiled_policy.h"

#include <algorithm>

namespace egressd::policy {

CompiledPolicy::CompiledPolicy(Policy policy) : policy_(std::move(policy)) {
  for (const auto& h : policy_.allowed_hosts)
    if (auto err = allowed_.Add(h); err && !invalid_entry_)
      invalid_entry_ = "allowed_hosts " + *err;
  for (const auto& h : policy_.denied_hosts)
    if (auto err = denied_.Add(h); err && !invalid_entry_) invalid_entry_ = "denied_hosts " + *err;
}

HostDecision CompiledPolicy::DecideHost(std::string_view host) const {
  if (invalid_entry_)
    return {HostVerdict::kDenied, "policy has an invalid entry: " + *invalid_entry_, std::nullopt};
  auto normalized = NormalizeHost(host);
  if (!normalized) return {HostVerdict::kDenied, "not a valid host name", std::nullopt};
  if (auto m = denied_.Match(*normalized))
    return {HostVerdict::kDenied, "denied_hosts entry \"" + *m + "\"", m};
  if (!deny_by_default())
    return {HostVerdict::kAllowed, "no allowed_hosts: allow by default", std::nullopt};
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
    if (r.host && r.port == port && std::find(hosts.begin(), hosts.end(), *r.host) == hosts.end())
      hosts.push_back(*r.host);
  return hosts;
}

}  // namespace egressd::policy
