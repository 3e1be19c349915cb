#include "policy/compiled_policy.h"

#include <algorithm>

namespace egressd::policy {

CompiledPolicy::CompiledPolicy(Policy policy, InstanceRules rules, std::string instance)
    : policy_(std::move(policy)), instance_(std::move(rules)), instance_name_(std::move(instance)) {
  for (const auto& h : policy_.allowed_hosts)
    if (auto err = allowed_.Add(h); err && !invalid_entry_)
      invalid_entry_ = "allowed_hosts " + *err;
  for (const auto& h : policy_.denied_hosts)
    if (auto err = denied_.Add(h); err && !invalid_entry_) invalid_entry_ = "denied_hosts " + *err;
  for (const auto& h : policy_.allow_get_body)
    if (auto err = get_body_.Add(h); err && !invalid_entry_)
      invalid_entry_ = "allow_get_body " + *err;
  for (const auto& h : policy_.tls_intercept)
    if (auto err = tls_intercept_.Add(h); err && !invalid_entry_)
      invalid_entry_ = "tls.intercept " + *err;
  for (const auto& h : policy_.tls_passthrough)
    if (auto err = tls_passthrough_.Add(h); err && !invalid_entry_)
      invalid_entry_ = "tls.passthrough " + *err;
}

bool CompiledPolicy::deny_by_default() const {
  return !policy_.allowed_hosts.empty();  // TODO(handlers): and the instance's
}

bool CompiledPolicy::can_intercept() const {
  return !policy_.tls_intercept.empty();  // TODO(handlers): and bindings that need requests
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

HostDecision CompiledPolicy::DecideTarget(std::string_view host, uint16_t port) const {
  HostDecision decision = DecideHost(host);
  if (decision.verdict != HostVerdict::kAllowed || deny_by_default()) return decision;
  auto normalized = NormalizeHost(host);  // valid: DecideHost allowed it
  auto literal = normalized ? IpAddress::Parse(*normalized) : std::nullopt;
  if (!literal) return decision;
  return DecideUnnamed(*literal, port, "IP literal " + *normalized);
}

HostDecision CompiledPolicy::DecideUnnamed(const IpAddress& addr, uint16_t port,
                                           const std::string& what) const {
  if (invalid_entry_)
    return {HostVerdict::kDenied, "policy has an invalid entry: " + *invalid_entry_, std::nullopt};
  if (deny_by_default())
    return {HostVerdict::kDenied, what + " under a deny-by-default policy", std::nullopt};
  if (policy_.denied_hosts.empty())
    return {HostVerdict::kAllowed, "no allowed_hosts or denied_hosts: allow by default",
            std::nullopt};
  for (const auto& r : policy_.allow_tcp)
    if (r.cidr && r.port == port && r.cidr->Contains(addr))
      return {HostVerdict::kAllowed, "allow_tcp entry \"" + r.text + "\"", r.text};
  if (policy_.allow_unnamed) return {HostVerdict::kAllowed, "allow_unnamed", std::nullopt};
  return {HostVerdict::kDenied,
          what +
              " names no host, so denied_hosts cannot be applied (allow_unnamed or allow_tcp "
              "lets it through)",
          std::nullopt};
}

HostDecision CompiledPolicy::DecideRequestBody(std::string_view method,
                                               std::string_view host) const {
  if (method != "GET" && method != "HEAD")
    return {HostVerdict::kAllowed, "a body is part of a " + std::string(method) + " request",
            std::nullopt};
  if (invalid_entry_)
    return {HostVerdict::kDenied, "policy has an invalid entry: " + *invalid_entry_, std::nullopt};
  if (auto m = get_body_.Match(host))
    return {HostVerdict::kAllowed, "allow_get_body entry \"" + *m + "\"", m};
  return {HostVerdict::kDenied,
          std::string(method) + " request with a body (allow_get_body does not list the host)",
          std::nullopt};
}

bool CompiledPolicy::Intercepts(std::string_view sni) const {
  if (invalid_entry_) return false;  // every host is denied anyway
  auto normalized = NormalizeHost(sni);
  if (!normalized) return false;
  return tls_intercept_.Match(*normalized) && !tls_passthrough_.Match(*normalized);
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
