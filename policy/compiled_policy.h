// A validated policy made ready for decisions on the data path.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/handler_eval.h"
#include "policy/host_glob.h"
#include "policy/instance_rules.h"
#include "policy/policy.h"

namespace egressd::policy {

enum class HostVerdict { kAllowed, kDenied };

struct HostDecision {
  HostVerdict verdict = HostVerdict::kDenied;
  std::string reason;  // human text for 403 bodies and audit logs
  std::optional<std::string> matched_entry;
  int status = 403;     // a request refused by this decision (a handler step may say another)
  std::string handler;  // the handler whose step decided, if one did
};

// The handler that decides a host's requests, and where its binding comes
// from. handler is null when the binding names a handler the policy does
// not define (an instance binding after a policy switch): every request it
// covers is refused (fail closed), `problem` says why.
struct BoundHandler {
  const Handler* handler = nullptr;
  const Params* params = nullptr;
  std::string handler_name;
  // "instance by_host \"*.github.com\"", "policy by_host ...",
  // "instance catch_all", "policy catch_all"
  std::string origin;
  bool by_host = false;  // bound to the host by name (a credential may go there)
  std::string problem;
};

class CompiledPolicy {
 public:
  // `policy` comes from the loader, which validated it. Should an entry still
  // be malformed (a Policy built by hand), the compiled policy fails closed:
  // DecideHost denies every host and invalid_entry() names the entry.
  // `rules`: the runtime rules of the one instance this is compiled for;
  // `instance` its name ({{instance}} in handler values).
  explicit CompiledPolicy(Policy policy, InstanceRules rules = {}, std::string instance = "");
  const Policy& policy() const { return policy_; }
  const InstanceRules& instance_rules() const { return instance_; }
  const std::string& name() const { return policy_.name; }
  // The policy's allowed_hosts, or the instance's, is non-empty.
  bool deny_by_default() const;
  const std::optional<std::string>& invalid_entry() const { return invalid_entry_; }

  // denied_hosts (the policy's and the instance's) always wins; then
  // allowed_hosts when non-empty (deny by default); then the host-level steps
  // (allow_hosts, deny_hosts, deny) of the handler bound to the host; else
  // allowed. A host that is no valid name is denied.
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
  // TLS to `sni` is terminated by egressd: tls.passthrough does not match,
  // and tls.intercept does or the handler bound to it needs requests.
  bool Intercepts(std::string_view sni) const;
  // Why TLS to `sni` must be refused, "" if it need not: the handler bound
  // to it needs to see requests but the host is in tls.passthrough.
  std::string InterceptRefusal(std::string_view sni) const;
  // Some TLS may be terminated (the sandbox's CA is used): tls.intercept is
  // non-empty or some handler of the policy needs requests (an instance may
  // bind it at runtime; `egressctl run` trusts the CA from the start).
  bool can_intercept() const;

  // The handler for a host's requests (normalized host): the instance's
  // by_host (exact beats glob, then the longest glob), the policy's by_host,
  // the instance's catch_all, the policy's catch_all. nullopt: none.
  std::optional<BoundHandler> HandlerFor(std::string_view host) const;
  // Runs the request-level steps of the handler bound to `request.host`
  // (its host-level ones decided already in DecideHost). No handler: nothing
  // to do (not refused, no edits).
  HandlerResult RunHandler(const RequestFacts& request, const SecretSource* secrets) const;
  // allow_plaintext_credentials: a credential may go to an upstream over plain HTTP.
  bool allow_plaintext_credentials() const { return policy_.allow_plaintext_credentials; }
  // allow_tcp entries given as an address or CIDR.
  bool AllowTcpByAddress(const IpAddress& addr, uint16_t port) const;
  // allow_tcp entries given by host name for this port, in file order, each
  // once (the caller resolves them).
  std::vector<std::string> AllowTcpHostsForPort(uint16_t port) const;

 private:
  Policy policy_;
  InstanceRules instance_;
  std::string instance_name_;
  HostGlobSet allowed_;
  HostGlobSet denied_;
  HostGlobSet get_body_;
  HostGlobSet tls_intercept_;
  HostGlobSet tls_passthrough_;
  std::optional<std::string> invalid_entry_;
  // by_host entries (normalized glob -> index into the binding list, the
  // first one written wins), and why a binding cannot be used ("" if it can).
  HostGlobSet instance_by_host_globs_;
  std::map<std::string, size_t> instance_by_host_index_;
  std::vector<std::string> instance_by_host_problems_;
  HostGlobSet policy_by_host_globs_;
  std::map<std::string, size_t> policy_by_host_index_;
  std::vector<std::string> policy_by_host_problems_;
  std::string instance_catch_all_problem_;
  std::string policy_catch_all_problem_;
  // Some host-level refusal is keyed by host name (denied_hosts, or a
  // deny_hosts or deny step bound by host or a deny_hosts catch_all): an
  // address that names no host could slip past it (DecideUnnamed).
  bool denies_by_name_ = false;

  BoundHandler Bind(const HandlerBinding& binding, std::string origin, bool by_host,
                    const std::string& problem) const;
  HostDecision DecideByHandler(const std::string& host, HostDecision allowed) const;
};

}  // namespace egressd::policy
