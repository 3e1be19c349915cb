// A validated policy made ready for decisions on the data path.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/host_glob.h"
#include "policy/policy.h"

namespace egressd::policy {

enum class HostVerdict { kAllowed, kDenied };

struct HostDecision {
  HostVerdict verdict;
  std::string reason;  // human text for 403 bodies and audit logs
  std::optional<std::string> matched_entry;
};

class CompiledPolicy {
 public:
  // `policy` comes from the loader, which validated it. Should an entry still
  // be malformed (a Policy built by hand), the compiled policy fails closed:
  // DecideHost denies every host and invalid_entry() names the entry.
  explicit CompiledPolicy(Policy policy);
  const Policy& policy() const { return policy_; }
  const std::string& name() const { return policy_.name; }
  bool deny_by_default() const { return !policy_.allowed_hosts.empty(); }
  const std::optional<std::string>& invalid_entry() const { return invalid_entry_; }

  // denied_hosts always wins; then allowed_hosts when non-empty (deny by
  // default); else allowed. A host that is no valid name is denied.
  HostDecision DecideHost(std::string_view host) const;
  // The host a connection or request names (SNI, Host) on its way to `port`:
  // DecideHost, and an IP literal names no host (DecideUnnamed on its address).
  HostDecision DecideTarget(std::string_view host, uint16_t port) const;
  // A connection or request that names no host (`what`: "TLS without SNI",
  // "IP literal 1.2.3.4") going to addr:port. Deny by default: denied.
  // denied_hosts and no allowed_hosts: a denied host's address is reachable
  // this way, so denied unless allow_tcp covers addr:port (an address or CIDR
  // entry) or the policy says allow_unnamed. Neither list: allowed.
  HostDecision DecideUnnamed(const IpAddress& addr, uint16_t port, const std::string& what) const;
  // A GET or HEAD request with a body: an upstream that ignores such a body
  // reads it as the next request, which egressd never judged. Denied unless
  // allow_get_body matches the host; other methods are always allowed.
  HostDecision DecideRequestBody(std::string_view method, std::string_view host) const;
  // TLS to `sni` is terminated by egressd: tls.intercept matches and
  // tls.passthrough does not. No tls section: never.
  bool Intercepts(std::string_view sni) const;
  // The policy terminates some TLS (a sandbox's CA is used).
  bool can_intercept() const { return !policy_.tls_intercept.empty(); }
  // allow_tcp entries given as an address or CIDR.
  bool AllowTcpByAddress(const IpAddress& addr, uint16_t port) const;
  // allow_tcp entries given by host name for this port, in file order, each
  // once (the caller resolves them).
  std::vector<std::string> AllowTcpHostsForPort(uint16_t port) const;

 private:
  Policy policy_;
  HostGlobSet allowed_;
  HostGlobSet denied_;
  HostGlobSet get_body_;
  HostGlobSet tls_intercept_;
  HostGlobSet tls_passthrough_;
  std::optional<std::string> invalid_entry_;
};

}  // namespace egressd::policy
