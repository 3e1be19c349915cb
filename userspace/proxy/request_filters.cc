#include "userspace/proxy/request_filters.h"

#include <fmt/format.h>

#include "userspace/audit/denial.h"
#include "userspace/protocol/http_upgrade.h"

namespace egressd::proxy {
namespace {

// Records a deny of this request; false in audit mode (go on as allowed).
bool Enforce(RequestContext& ctx, const std::string& reason) {
  audit::AuditEvent event;
  event.layer = "proxy";
  event.address = ctx.origin_addr.ToString();
  event.port = ctx.origin_port;
  event.host = ctx.head.host();
  event.reason = reason;
  return audit::DenyOrReport(ctx.view, ctx.events, std::move(event));
}

// On an intercepted connection the Host must name the host the TLS
// connection was made for: no domain fronting (421, RFC 9110 15.5.20).
FilterVerdict HostIsTheSni(RequestContext& ctx) {
  if (!ctx.tls_sni || ctx.head.host() == *ctx.tls_sni) return FilterVerdict::Continue();
  std::string why = "request for host \"" + ctx.head.host() + "\" on a TLS connection made for \"" +
                    *ctx.tls_sni + "\"";
  if (!Enforce(ctx, why)) return FilterVerdict::Continue();
  ctx.view.counters->requests_denied++;
  return FilterVerdict::Reply(421, why);
}

// The Host decides every request (allowed_hosts, denied_hosts, allow_unnamed).
FilterVerdict HostPolicy(RequestContext& ctx) {
  const policy::CompiledPolicy& policy = *ctx.view.policy;
  const std::string& host = ctx.head.host();
  if (ctx.view.audit()) ctx.view.observed->Host(host);
  auto decision = policy.DecideTarget(host, ctx.origin_port);
  if (decision.verdict == policy::HostVerdict::kAllowed || !Enforce(ctx, decision.reason))
    return FilterVerdict::Continue();
  ctx.view.counters->requests_denied++;
  return FilterVerdict::Reply(403, fmt::format("request to host \"{}\" denied by policy \"{}\": {}",
                                               host, policy.name(), decision.reason));
}

// GET and HEAD carry no body unless the policy says so for that host.
FilterVerdict RequestBody(RequestContext& ctx) {
  if (!ctx.head.fields().has_body) return FilterVerdict::Continue();
  auto body = ctx.view.policy->DecideRequestBody(ctx.head.method(), ctx.head.host());
  if (body.verdict == policy::HostVerdict::kAllowed || !Enforce(ctx, body.reason))
    return FilterVerdict::Continue();
  ctx.view.counters->bad_requests++;
  return FilterVerdict::Reply(400, body.reason);
}

// Only WebSocket may become a tunnel: other Upgrade tokens never reach the upstream.
FilterVerdict UpgradeToWebSocketOnly(RequestContext& ctx) {
  protocol::HeaderFields fields = ctx.head.fields().headers;
  auto upgrade = protocol::KeepOnlyWebSocketUpgrade(fields);
  if (upgrade.changed) ctx.head.Edit().headers = std::move(fields);
  ctx.websocket = ctx.head.fields().upgrade && upgrade.websocket;
  return FilterVerdict::Continue();
}

using RequestFilter = FilterVerdict (*)(RequestContext&);
constexpr RequestFilter kChain[] = {HostIsTheSni, HostPolicy, RequestBody, UpgradeToWebSocketOnly};

}  // namespace

FilterVerdict RunRequestFilters(RequestContext& ctx) {
  for (RequestFilter filter : kChain) {
    FilterVerdict verdict = filter(ctx);
    if (verdict.reply) return verdict;
  }
  return FilterVerdict::Continue();
}

}  // namespace egressd::proxy
