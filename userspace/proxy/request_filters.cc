#include "userspace/proxy/request_filters.h"

#include <fmt/format.h>

#include "userspace/audit/denial.h"
#include "userspace/protocol/http_upgrade.h"
#include "userspace/proxy/request_edits.h"

namespace egressd::proxy {
namespace {

std::string HandlerName(const policy::CompiledPolicy& policy, const std::string& host) {
  auto bound = policy.HandlerFor(host);
  return bound ? bound->handler_name : "";
}

audit::AuditEvent RequestEvent(const RequestContext& ctx, const std::string& reason,
                               const std::string& handler) {
  audit::AuditEvent event;
  event.layer = "proxy";
  event.address = ctx.origin_addr.ToString();
  event.port = ctx.origin_port;
  event.host = ctx.head.host();
  event.reason = reason;
  event.handler = handler;
  return event;
}

// Records a deny of this request; false in audit mode (go on as allowed).
// `seq` gets the event's seq, for the reply.
bool Enforce(RequestContext& ctx, const std::string& reason, uint64_t* seq,
             const std::string& handler = "") {
  return audit::DenyOrReport(ctx.view, ctx.events, RequestEvent(ctx, reason, handler), seq);
}

// Records a refusal that holds in audit mode too (the request cannot be made
// as the policy says: a credential missing, or a place it may not go).
// Returns the event's seq.
uint64_t RecordEnforced(RequestContext& ctx, const std::string& reason,
                        const std::string& handler) {
  audit::AuditEvent event = RequestEvent(ctx, reason, handler);
  event.instance = ctx.view.instance;
  event.cgroup = ctx.view.cgroup;
  return audit::RecordDenial(ctx.events, ctx.view.id, std::move(event));
}

// On an intercepted connection the Host must name the host the TLS
// connection was made for: no domain fronting (421, RFC 9110 15.5.20).
FilterVerdict HostIsTheSni(RequestContext& ctx) {
  if (!ctx.tls_sni || ctx.head.host() == *ctx.tls_sni) return FilterVerdict::Continue();
  std::string why = "request for host \"" + ctx.head.host() + "\" on a TLS connection made for \"" +
                    *ctx.tls_sni + "\"";
  uint64_t seq = 0;
  if (!Enforce(ctx, why, &seq)) return FilterVerdict::Continue();
  ctx.view.counters->requests_denied++;
  return FilterVerdict::Reply({421, ReplyReason::kHostMismatch, why, "", seq});
}

// The Host decides every request (allowed_hosts, denied_hosts, allow_unnamed).
FilterVerdict HostPolicy(RequestContext& ctx) {
  const policy::CompiledPolicy& policy = *ctx.view.policy;
  const std::string& host = ctx.head.host();
  if (ctx.view.audit()) ctx.view.observed->Host(host);
  auto decision = policy.DecideTarget(host, ctx.origin_port);
  uint64_t seq = 0;
  if (decision.verdict == policy::HostVerdict::kAllowed ||
      !Enforce(ctx, decision.reason, &seq, decision.handler))
    return FilterVerdict::Continue();
  ctx.view.counters->requests_denied++;
  return FilterVerdict::Reply({decision.status, ReplyReason::kDeniedHost,
                               fmt::format("request to host \"{}\" denied by policy \"{}\": {}",
                                           host, policy.name(), decision.reason),
                               decision.reason, seq});
}

// GET and HEAD carry no body unless the policy says so for that host.
FilterVerdict RequestBody(RequestContext& ctx) {
  if (!ctx.head.fields().has_body) return FilterVerdict::Continue();
  auto body = ctx.view.policy->DecideRequestBody(ctx.head.method(), ctx.head.host());
  uint64_t seq = 0;
  if (body.verdict == policy::HostVerdict::kAllowed || !Enforce(ctx, body.reason, &seq))
    return FilterVerdict::Continue();
  ctx.view.counters->bad_requests++;
  return FilterVerdict::Reply({400, ReplyReason::kDeniedBody, body.reason, body.reason, seq});
}

// The request-level steps of the handler bound to the host: methods, paths,
// and the headers and credentials it adds. A credential goes only over TLS
// egressd verified (an intercepted connection, whose Host is its SNI), unless
// the policy says allow_plaintext_credentials.
FilterVerdict Handler(RequestContext& ctx) {
  const policy::CompiledPolicy& policy = *ctx.view.policy;
  const std::string path = TargetPath(ctx.head.fields().target);
  policy::HandlerResult result =
      policy.RunHandler({ctx.head.host(), ctx.head.method(), path}, ctx.secrets);
  if (result.refused) {
    const std::string handler = HandlerName(policy, ctx.head.host());
    uint64_t seq = 0;
    if (result.failed_closed) {
      seq = RecordEnforced(ctx, result.reason, handler);
    } else if (!Enforce(ctx, result.reason, &seq, handler)) {
      return FilterVerdict::Continue();  // audit mode: reported, forwarded unchanged
    }
    ctx.view.counters->requests_denied++;
    return FilterVerdict::Reply({result.status, HandlerRefusalReason(result),
                                 fmt::format("request to \"{}\" refused by policy \"{}\": {}",
                                             ctx.head.host(), policy.name(), result.reason),
                                 fmt::format("handler \"{}\" {}", handler, result.step), seq});
  }
  if (result.credential && !ctx.tls_sni && !policy.allow_plaintext_credentials()) {
    std::string why = fmt::format(
        "request to \"{}\" would carry a credential over plain HTTP; egressd adds credentials "
        "only to requests it sends over TLS it verified (intercept the host's TLS, or set "
        "allow_plaintext_credentials: true for an internal service)",
        ctx.head.host());
    uint64_t seq = RecordEnforced(ctx, why, HandlerName(policy, ctx.head.host()));
    ctx.view.counters->requests_denied++;
    return FilterVerdict::Reply(
        {503, ReplyReason::kPlaintextCredential, why, "allow_plaintext_credentials", seq});
  }
  if (!result.edits.empty()) ApplyRequestEdits(result.edits, ctx.head.Edit());
  if (result.credential) ctx.view.counters->requests_injected++;
  return FilterVerdict::Continue();
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
constexpr RequestFilter kChain[] = {HostIsTheSni, HostPolicy, RequestBody, Handler,
                                    UpgradeToWebSocketOnly};

}  // namespace

FilterVerdict RunRequestFilters(RequestContext& ctx) {
  for (RequestFilter filter : kChain) {
    FilterVerdict verdict = filter(ctx);
    if (verdict.reply) return verdict;
  }
  return FilterVerdict::Continue();
}

}  // namespace egressd::proxy
