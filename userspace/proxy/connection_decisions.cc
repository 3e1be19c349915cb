// The decisions made on an open connection: each HTTP request through the
// request filters, an open tunnel decided again after a policy change, and
// every deny, recorded through audit/denial.h (enforced, or reported in
// audit mode).

#include "userspace/audit/denial.h"
#include "userspace/proxy/connection.h"
#include "userspace/proxy/worker.h"
#include "userspace/secrets/secret_store.h"

namespace egressd::proxy {
namespace {

audit::AuditEvent ProxyEvent(const policy::IpAddress& addr, uint16_t port, const std::string& host,
                             const std::string& why) {
  audit::AuditEvent event;
  event.layer = "proxy";
  event.address = addr.ToString();
  event.port = port;
  event.host = host;
  event.reason = why;
  return event;
}

}  // namespace

FilterVerdict Connection::FilterRequest(RequestHead& head, bool* websocket) {
  // The policy is read again for every request: a switch applies to the
  // next request on an open connection.
  auto view = CurrentView();
  RequestContext ctx{*view, worker_.ctx().events, origin_addr_, origin_port_, head};
  if (client_tls_) ctx.tls_sni = &intercepted_sni_;
  // The secrets as they are now (a rotation applies to the next request),
  // looked at only if a handler uses one.
  std::optional<secrets::LazyInstanceSecrets> secrets;
  if (worker_.ctx().secrets) {
    secrets.emplace(*worker_.ctx().secrets, view->instance);
    ctx.secrets = &*secrets;
  }
  FilterVerdict verdict = RunRequestFilters(ctx);
  *websocket = ctx.websocket;
  return verdict;
}

void Connection::RecheckTunnel() {
  // Pass-through TLS and WebSocket tunnels were decided by a host once; a
  // change that now denies the host ends them (plain allow_tcp tunnels, by
  // address, are the kernel's and the policy file's to decide).
  if (phase_ != Phase::kTunnel || decided_host_.empty() || tunnel_reported_) return;
  auto view = CurrentView();
  auto decision = view->policy->DecideTarget(decided_host_, origin_port_);
  std::string why;
  if (decision.verdict != policy::HostVerdict::kAllowed) {
    why = "open tunnel to " + decided_host_ + " closed, the host is denied now: " + decision.reason;
  } else if (std::string refusal = view->policy->InterceptRefusal(decided_host_);
             !ws_from_client_ && !refusal.empty()) {
    // Pass-through TLS to a host bound since to a handler that must see its
    // requests: the requests in this tunnel would go around it.
    why = "open tunnel to " + decided_host_ + " closed: " + refusal;
  } else if (auto bound = view->policy->HandlerFor(decided_host_);
             !ws_from_client_ && !client_tls_ && bound && bound->handler &&
             bound->handler->needs_requests()) {
    // The same for a host whose TLS is intercepted now: its next connection
    // is, and its requests meet the handler.
    why = "open tunnel to " + decided_host_ + " closed: handler \"" + bound->handler_name + "\" (" +
          bound->origin + ") must see its requests; a new connection is intercepted";
  } else {
    return;
  }
  if (!Enforce(decided_host_, why, decision.handler)) {
    tunnel_reported_ = true;  // audit mode: reported once, the tunnel goes on
    return;
  }
  view->counters->connections_denied++;
  Close(why);
}

bool Connection::Enforce(const std::string& host, const std::string& why,
                         const std::string& handler) {
  auto view = CurrentView();
  if (!view) return true;
  audit::AuditEvent event = ProxyEvent(origin_addr_, origin_port_, host, why);
  event.handler = handler;
  bool enforced = audit::DenyOrReport(*view, worker_.ctx().events, std::move(event));
  enforced ? tally_.Denied() : tally_.LetThrough();
  return enforced;
}

uint64_t Connection::RecordEnforced(const std::string& host, const std::string& why) {
  tally_.Refused();
  if (!sandbox_) return 0;
  audit::AuditEvent event = ProxyEvent(origin_addr_, origin_port_, host, why);
  event.instance = sandbox_->instance;
  event.cgroup = sandbox_->cgroup;
  return audit::RecordDenial(worker_.ctx().events, sandbox_->id, std::move(event));
}

void Connection::CloseWithEvent(const std::string& why) {
  RecordEnforced(decided_host_, why);
  Close(why);
}

void Connection::DenyConnection(const std::string& why) {
  tally_.Denied();
  if (sandbox_) sandbox_->counters->connections_denied++;
  CloseWithEvent(why);
}

void Connection::DenyOrPass(const std::string& why, bool tls_alert) {
  if (!Enforce(decided_host_, why)) {
    PassToOriginal("audit mode");
    return;
  }
  if (sandbox_) sandbox_->counters->connections_denied++;
  if (tls_alert) {
    RefuseClientHello();
  } else {
    Close(why);
  }
}

}  // namespace egressd::proxy
