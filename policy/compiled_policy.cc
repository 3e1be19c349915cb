#include "policy/compiled_policy.h"

#include <algorithm>

namespace egressd::policy {
namespace {

HostDecision Decision(HostVerdict verdict, std::string reason,
                      std::optional<std::string> matched_entry = std::nullopt) {
  HostDecision d;
  d.verdict = verdict;
  d.reason = std::move(reason);
  d.matched_entry = std::move(matched_entry);
  return d;
}

HostDecision Denied(std::string reason, std::optional<std::string> matched_entry = std::nullopt) {
  return Decision(HostVerdict::kDenied, std::move(reason), std::move(matched_entry));
}

HostDecision Allowed(std::string reason, std::optional<std::string> matched_entry = std::nullopt) {
  return Decision(HostVerdict::kAllowed, std::move(reason), std::move(matched_entry));
}

bool HasStep(const Handler* handler, StepKind kind) {
  if (!handler) return false;
  for (const auto& s : handler->steps)
    if (s.kind == kind) return true;
  return false;
}

}  // namespace

CompiledPolicy::CompiledPolicy(Policy policy, InstanceRules rules, std::string instance)
    : policy_(std::move(policy)), instance_(std::move(rules)), instance_name_(std::move(instance)) {
  auto add = [&](HostGlobSet& set, const std::vector<std::string>& hosts, const char* what) {
    for (const auto& h : hosts)
      if (auto err = set.Add(h); err && !invalid_entry_) invalid_entry_ = what + (" " + *err);
  };
  add(allowed_, policy_.allowed_hosts, "allowed_hosts");
  add(allowed_, instance_.allowed_hosts, "instance allowed_hosts");
  add(denied_, policy_.denied_hosts, "denied_hosts");
  add(denied_, instance_.denied_hosts, "instance denied_hosts");
  add(get_body_, policy_.allow_get_body, "allow_get_body");
  add(tls_intercept_, policy_.tls_intercept, "tls.intercept");
  add(tls_passthrough_, policy_.tls_passthrough, "tls.passthrough");

  auto find = [&](const HandlerBinding& b) -> const Handler* {
    auto it = policy_.handlers.find(b.handler);
    return it == policy_.handlers.end() ? nullptr : &it->second;
  };
  auto index = [&](const std::vector<HostBinding>& bindings, HostGlobSet& globs,
                   std::map<std::string, size_t>& by_entry, std::vector<std::string>& problems,
                   const char* what) {
    for (size_t i = 0; i < bindings.size(); ++i) {
      problems.push_back(CheckBinding(policy_.handlers, bindings[i].binding));
      std::string err;
      auto pattern = NormalizeHostPattern(bindings[i].host, &err);
      if (!pattern) {
        if (!invalid_entry_) invalid_entry_ = what + (" " + err);
        continue;
      }
      globs.Add(*pattern);
      by_entry.emplace(*pattern, i);
      const Handler* h = find(bindings[i].binding);
      denies_by_name_ = denies_by_name_ || HasStep(h, StepKind::kDeny) ||
                        HasStep(h, StepKind::kDenyHosts) || HasStep(h, StepKind::kAllowHosts);
    }
  };
  index(instance_.by_host, instance_by_host_globs_, instance_by_host_index_,
        instance_by_host_problems_, "instance by_host");
  index(policy_.by_host, policy_by_host_globs_, policy_by_host_index_, policy_by_host_problems_,
        "by_host");
  if (instance_.catch_all) {
    instance_catch_all_problem_ = CheckBinding(policy_.handlers, *instance_.catch_all);
    denies_by_name_ = denies_by_name_ || HasStep(find(*instance_.catch_all), StepKind::kDenyHosts);
  }
  if (policy_.catch_all) {
    policy_catch_all_problem_ = CheckBinding(policy_.handlers, *policy_.catch_all);
    denies_by_name_ = denies_by_name_ || HasStep(find(*policy_.catch_all), StepKind::kDenyHosts);
  }
  denies_by_name_ = denies_by_name_ || !denied_.empty();
}

bool CompiledPolicy::deny_by_default() const {
  return !policy_.allowed_hosts.empty() || !instance_.allowed_hosts.empty();
}

bool CompiledPolicy::can_intercept() const {
  if (!policy_.tls_intercept.empty()) return true;
  // Any handler of the policy may be bound at runtime (instance bindings name
  // the policy's handlers only): one that needs requests may intercept.
  return std::any_of(policy_.handlers.begin(), policy_.handlers.end(),
                     [](const auto& h) { return h.second.needs_requests(); });
}

BoundHandler CompiledPolicy::Bind(const HandlerBinding& binding, std::string origin, bool by_host,
                                  const std::string& problem) const {
  BoundHandler bound;
  bound.handler_name = binding.handler;
  bound.origin = std::move(origin);
  bound.by_host = by_host;
  bound.params = &binding.params;
  if (!problem.empty()) {
    bound.problem = bound.origin + ": " + problem + " in policy \"" + policy_.name + "\"";
    return bound;
  }
  auto it = policy_.handlers.find(binding.handler);
  if (it == policy_.handlers.end()) {  // CheckBinding said so already; fail closed anyway
    bound.problem = bound.origin + ": handler \"" + binding.handler + "\" is not defined";
    return bound;
  }
  bound.handler = &it->second;
  return bound;
}

std::optional<BoundHandler> CompiledPolicy::HandlerFor(std::string_view host) const {
  if (auto normalized = NormalizeHost(host)) {
    if (auto m = instance_by_host_globs_.Match(*normalized)) {
      size_t i = instance_by_host_index_.at(*m);
      return Bind(instance_.by_host[i].binding, "instance by_host \"" + *m + "\"", true,
                  instance_by_host_problems_[i]);
    }
    if (auto m = policy_by_host_globs_.Match(*normalized)) {
      size_t i = policy_by_host_index_.at(*m);
      return Bind(policy_.by_host[i].binding, "policy by_host \"" + *m + "\"", true,
                  policy_by_host_problems_[i]);
    }
  }
  if (instance_.catch_all)
    return Bind(*instance_.catch_all, "instance catch_all", false, instance_catch_all_problem_);
  if (policy_.catch_all)
    return Bind(*policy_.catch_all, "policy catch_all", false, policy_catch_all_problem_);
  return std::nullopt;
}

// `allowed` unless the host-level steps of the handler bound to `host`
// (normalized) refuse it.
HostDecision CompiledPolicy::DecideByHandler(const std::string& host, HostDecision allowed) const {
  auto bound = HandlerFor(host);
  if (!bound) return allowed;
  if (!bound->handler) {
    HostDecision d = Denied(bound->problem);
    d.handler = bound->handler_name;
    return d;
  }
  TemplateContext context{instance_name_, bound->params, nullptr};
  HandlerResult r =
      EvaluateHandler(*bound->handler, context, RequestFacts{host, "", ""}, StepScope::kHostOnly);
  if (!r.refused) return allowed;
  HostDecision d = Denied(r.reason);
  d.status = r.status;
  d.handler = bound->handler_name;
  return d;
}

HostDecision CompiledPolicy::DecideHost(std::string_view host) const {
  if (invalid_entry_) return Denied("policy has an invalid entry: " + *invalid_entry_);
  auto normalized = NormalizeHost(host);
  if (!normalized) return Denied("not a valid host name");
  if (auto m = denied_.Match(*normalized)) return Denied("denied_hosts entry \"" + *m + "\"", m);
  if (!deny_by_default())
    return DecideByHandler(*normalized, Allowed("no allowed_hosts: allow by default"));
  if (auto m = allowed_.Match(*normalized))
    return DecideByHandler(*normalized, Allowed("allowed_hosts entry \"" + *m + "\"", m));
  return Denied("not in allowed_hosts (deny by default)");
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
  if (invalid_entry_) return Denied("policy has an invalid entry: " + *invalid_entry_);
  if (deny_by_default()) return Denied(what + " under a deny-by-default policy");
  // What names no host meets the host-level steps of the handler bound to
  // its address (a by_host entry of that address, else the catch-all):
  // allow_hosts of names refuses it, deny refuses it.
  HostDecision by_handler = DecideByHandler(addr.ToString(), Allowed(""));
  if (by_handler.verdict == HostVerdict::kDenied) {
    by_handler.reason = what + ": " + by_handler.reason;
    return by_handler;
  }
  if (!denies_by_name_) return Allowed("no allowed_hosts or denied_hosts: allow by default");
  for (const auto& r : policy_.allow_tcp)
    if (r.cidr && r.port == port && r.cidr->Contains(addr))
      return Allowed("allow_tcp entry \"" + r.text + "\"", r.text);
  if (policy_.allow_unnamed) return Allowed("allow_unnamed");
  return Denied(what +
                " names no host, so denied_hosts cannot be applied (allow_unnamed or allow_tcp "
                "lets it through)");
}

HostDecision CompiledPolicy::DecideRequestBody(std::string_view method,
                                               std::string_view host) const {
  if (method != "GET" && method != "HEAD")
    return Allowed("a body is part of a " + std::string(method) + " request");
  if (invalid_entry_) return Denied("policy has an invalid entry: " + *invalid_entry_);
  if (auto m = get_body_.Match(host)) return Allowed("allow_get_body entry \"" + *m + "\"", m);
  return Denied(std::string(method) +
                " request with a body (allow_get_body does not list the host)");
}

bool CompiledPolicy::Intercepts(std::string_view sni) const {
  if (invalid_entry_) return false;  // every host is denied anyway
  auto normalized = NormalizeHost(sni);
  if (!normalized) return false;
  if (tls_passthrough_.Match(*normalized)) return false;
  if (tls_intercept_.Match(*normalized)) return true;
  auto bound = HandlerFor(*normalized);
  return bound && bound->handler && bound->handler->needs_requests();
}

std::string CompiledPolicy::InterceptRefusal(std::string_view sni) const {
  if (invalid_entry_) return "";
  auto normalized = NormalizeHost(sni);
  if (!normalized) return "";
  auto passthrough = tls_passthrough_.Match(*normalized);
  if (!passthrough) return "";
  auto bound = HandlerFor(*normalized);
  if (!bound || !bound->handler || !bound->handler->needs_requests()) return "";
  return "handler \"" + bound->handler_name + "\" (" + bound->origin +
         ") needs to see requests to " + *normalized + ", but tls.passthrough entry \"" +
         *passthrough + "\" keeps its TLS opaque";
}

HandlerResult CompiledPolicy::RunHandler(const RequestFacts& request,
                                         const SecretSource* secrets) const {
  auto bound = HandlerFor(request.host);
  if (!bound) return {};
  HandlerResult r;
  if (!bound->handler) {
    r.refused = true;
    r.status = 503;
    r.reason = bound->problem;
    r.failed_closed = true;
    return r;
  }
  TemplateContext context{instance_name_, bound->params, secrets};
  r = EvaluateHandler(*bound->handler, context, request, StepScope::kRequestOnly);
  if (!r.refused && r.credential && !bound->by_host) {
    HandlerResult refused;
    refused.refused = true;
    refused.status = 503;
    refused.failed_closed = true;
    refused.reason = "handler \"" + bound->handler_name + "\" adds a credential but is bound by " +
                     bound->origin +
                     "; a credential only goes to a host a binding names (bind it by host in "
                     "by_host)";
    return refused;
  }
  return r;
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
