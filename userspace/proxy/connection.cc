// One sandbox connection from accept() to its end: what it is (original
// destination, sandbox), the decisions made on its first bytes (allow_tcp,
// TLS SNI: pass through, intercept or refuse; plain HTTP: a session), the
// completion switch, and the close. The rest of the class, by concern:
//   connection_upstream.cc   resolve, connect, TLS to the upstream, route
//   connection_relay.cc      moving bytes: receives, sends, the TLS sides
//   connection_decisions.cc  request filters, open tunnels re-decided, denies
//   connection_deadlines.cc  deadlines and the idle timer
//   connection_pooling.cc    upstreams kept for other clients
//   connection_parking.cc    idle connections give their buffers back
#include "userspace/proxy/connection.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "userspace/common/rate_limited_warning.h"
#include "userspace/protocol/http_fields.h"
#include "userspace/protocol/http_sniff.h"
#include "userspace/protocol/tls_alert.h"
#include "userspace/protocol/tls_client_hello.h"
#include "userspace/proxy/original_destination.h"
#include "userspace/proxy/upstream_choice.h"
#include "userspace/proxy/worker.h"

namespace egressd::proxy {
namespace {

constexpr size_t kClassifyLimit = 16 * 1024;  // at most this much is peeked

}  // namespace

Connection::Connection(Worker& worker, uint64_t id, int client_fd)
    : worker_(worker), id_(id), client_fd_(client_fd) {}

Connection::~Connection() = default;

std::shared_ptr<const sandbox::SandboxView> Connection::CurrentView() const {
  // A detached sandbox keeps its last view for connections already open.
  // The id may have been reused by a sandbox attached since: only the same
  // attachment (generation) counts.
  auto view = worker_.ctx().sandboxes->Find(origin_.sandbox_id);
  return view && view->generation == sandbox_->generation ? view : sandbox_;
}

void Connection::Start() {
  // The client socket has TCP_NODELAY from its listener (BindLoopback).
  if (!LookupOrigin()) return;
  slot_ =
      ConnectionSlot::Take(sandbox_->counters, worker_.ctx().options.max_connections_per_sandbox);
  if (!slot_) {
    // Refused before any upstream work; counted by Take, one event a second.
    std::string why = fmt::format(
        "connection refused: the sandbox has {} connections open (--max-connections-per-sandbox)",
        worker_.ctx().options.max_connections_per_sandbox);
    tally_.Refused();
    if (LimitEventDue(*sandbox_->counters)) RecordEnforced("", why);
    Close(why);
    return;
  }
  sandbox_->counters->connections++;
  last_byte_ = std::chrono::steady_clock::now();
  ArmIdleTimer(std::min<std::chrono::nanoseconds>(worker_.ctx().options.idle_timeout, kParkAfter));
  const policy::CompiledPolicy& policy = *sandbox_->policy;
  if (policy.AllowTcpByAddress(origin_addr_, origin_port_)) {
    PassToOriginal("allow_tcp");
    return;
  }
  tcp_hosts_ = policy.AllowTcpHostsForPort(origin_port_);
  CheckNextTcpHost();
}

bool Connection::LookupOrigin() {
  const ProxyContext& ctx = worker_.ctx();
  std::optional<egressd_orig_dst> origin = TakeOriginalDestination(client_fd_.get(), *ctx.bpf);
  if (!origin) {
    // Not redirected by our programs, or the record is gone: fail closed.
    ctx.counters->unknown_origin++;
    static RateLimitedWarning warning(std::chrono::seconds(5));
    if (warning.Due())
      spdlog::warn(
          "proxy: refused a connection with no recorded original destination (status: "
          "proxy.unknown_origin {}; this warning at most every {} s)",
          ctx.counters->unknown_origin.load(), warning.period_seconds());
    Close("no original destination");
    return false;
  }
  origin_ = *origin;
  sandbox_ = ctx.sandboxes->Find(origin_.sandbox_id);
  if (!sandbox_) {
    ctx.counters->unknown_sandbox++;
    static RateLimitedWarning warning(std::chrono::seconds(5));
    if (warning.Due())
      spdlog::warn(
          "proxy: refused a connection of unknown sandbox id {} (status: proxy.unknown_sandbox "
          "{}; this warning at most every {} s)",
          origin_.sandbox_id, ctx.counters->unknown_sandbox.load(), warning.period_seconds());
    Close("unknown sandbox");
    return false;
  }
  memcpy(origin_addr_.bytes.data(), origin_.addr, 16);
  origin_port_ = ntohs(origin_.port);
  return true;
}

// allow_tcp entries given by name: the original destination must be one of
// the name's addresses. Checked one name at a time, before any byte is read,
// so server-speaks-first protocols work.
void Connection::CheckNextTcpHost() {
  if (phase_ == Phase::kClosing) return;
  if (tcp_host_index_ >= tcp_hosts_.size()) {
    // Nothing in allow_tcp: read the first bytes to classify.
    phase_ = Phase::kClassifying;
    if (!TakeBuffer(up_)) {
      Close("no memory for the connection's relay buffer");
      return;
    }
    ArmDeadline(worker_.ctx().options.head_timeout);
    Pump();
    return;
  }
  resolving_for_tcp_ = true;
  phase_ = Phase::kResolving;
  const std::string& host = tcp_hosts_[tcp_host_index_];
  LookupHost(host);
}

void Connection::Classify() {
  std::span<const uint8_t> data(up_.buf.get(), up_.end);
  auto hello = protocol::ParseClientHello(data);
  switch (hello.status) {
    case protocol::ClientHelloStatus::kOk:
      CancelDeadline();
      DecideTls(hello.sni);
      return;
    case protocol::ClientHelloStatus::kMalformed:
      DenyOrPass("malformed TLS ClientHello: " + hello.error);
      return;
    case protocol::ClientHelloStatus::kNeedMore:
      if (up_.end >= kClassifyLimit) DenyOrPass("TLS ClientHello larger than 16 KiB");
      return;
    case protocol::ClientHelloStatus::kNotTls:
      break;
  }
  switch (protocol::SniffHttpRequest(data)) {
    case protocol::SniffResult::kHttp:
      // From here the head is the session's: --header-timeout from now.
      CancelDeadline();
      mode_ = Mode::kHttp;
      phase_ = Phase::kHttp;
      session_.emplace(*this, up_, down_);
      session_->OnClientBytes();
      return;
    case protocol::SniffResult::kNeedMore:
      if (up_.end >= kClassifyLimit) DenyOrPass("no HTTP request line within 16 KiB");
      return;
    case protocol::SniffResult::kNotHttp:
      DenyOrPass("neither TLS nor HTTP, and not in allow_tcp");
      return;
  }
}

void Connection::DecideTls(const std::optional<std::string>& sni) {
  auto view = CurrentView();
  const policy::CompiledPolicy& policy = *view->policy;
  mode_ = Mode::kTunnel;
  if (!sni) {
    auto decision = policy.DecideUnnamed(origin_addr_, origin_port_, "TLS without SNI");
    if (decision.verdict != policy::HostVerdict::kAllowed) {
      DenyOrPass(decision.reason, /*tls_alert=*/true);
      return;
    }
    view->counters->tls_passthrough++;
    PassToOriginal("TLS without SNI");
    return;
  }
  if (view->audit()) view->observed->Host(*sni);
  auto decision = policy.DecideTarget(*sni, origin_port_);
  if (decision.verdict != policy::HostVerdict::kAllowed) {
    if (Enforce(*sni, "SNI " + *sni + ": " + decision.reason, decision.handler)) {
      decided_host_ = *sni;
      view->counters->connections_denied++;
      // Where the sandbox trusts its CA for this host, the handshake
      // completes and every request gets a 403 that says why; elsewhere the
      // alert access_denied does.
      if (policy.Intercepts(*sni)) {
        StartInterception(*sni);
      } else {
        RefuseClientHello();
      }
      return;
    }
    tunnel_reported_ = true;  // audit mode: reported once, here
  }
  // A handler that must see this host's requests, on a host never to be
  // intercepted: neither passing it through nor terminating it is right.
  if (std::string why = policy.InterceptRefusal(*sni);
      !why.empty() && Enforce(*sni, "SNI " + *sni + ": " + why)) {
    decided_host_ = *sni;
    view->counters->connections_denied++;
    RefuseClientHello();
    return;
  }
  if (policy.Intercepts(*sni)) {
    StartInterception(*sni);
    return;
  }
  view->counters->tls_passthrough++;
  ResolveAndConnect(*sni);
}

// The client learns why: a fatal access_denied alert, then the end of the
// connection (nothing was sent upstream; the deny is recorded already).
void Connection::RefuseClientHello() {
  SendReplyThenClose(protocol::TlsFatalAlertRecord(protocol::kTlsAlertAccessDenied));
}

void Connection::StartInterception(const std::string& sni) {
  auto view = CurrentView();
  std::string why = "SNI " + sni + ": to be intercepted, ";
  if (!view->leaves || !worker_.ctx().tls_server) {
    DenyConnection(why + "but the sandbox's CA is not available");
    return;
  }
  auto leaf = view->leaves->Get(sni);
  if (!leaf.ok()) {
    DenyConnection(why + "but no certificate could be made for it: " + leaf.status().message());
    return;
  }
  auto stream = worker_.ctx().tls_server->NewStream((*leaf)->cert(), (*leaf)->key());
  if (!stream.ok()) {
    Close("TLS server stream: " + stream.status().message());
    return;
  }
  client_tls_ = std::make_unique<TlsSide>(std::move(*stream));
  // The ClientHello read to classify is the stream's first input.
  client_tls_->Preload({up_.buf.get(), up_.end});
  up_.Reset();
  intercepted_sni_ = protocol::ToLower(sni);
  if (!intercepted_sni_.empty() && intercepted_sni_.back() == '.') intercepted_sni_.pop_back();
  view->counters->tls_intercepted++;
  mode_ = Mode::kHttp;
  phase_ = Phase::kHttp;
  session_.emplace(*this, up_, down_);
  // The handshake and the first request head complete within
  // --header-timeout, as a plain request's head does.
  ArmDeadline(worker_.ctx().options.head_timeout);
  Deliver(true);
}

void Connection::PassToOriginal(const char* why) {
  mode_ = Mode::kTunnel;
  decided_host_.clear();
  auto view = CurrentView();
  // Audit mode: the kernel reported a deny_cidrs hit on this address already.
  std::string refusal = RefuseUpstreamAddress(origin_addr_, origin_port_, *view->policy, Own(),
                                              /*apply_deny_cidrs=*/!view->audit());
  if (!refusal.empty()) {
    DenyConnection(refusal);
    return;
  }
  if (view->audit()) view->observed->Tcp(FormatAddressPort(origin_addr_, origin_port_));
  spdlog::debug("proxy: {} -> {}:{} passed through ({})", sandbox_->instance,
                origin_addr_.ToString(), origin_port_, why);
  if (!TakeBuffer(up_)) {
    Close("no memory for the connection's relay buffer");
    return;
  }
  ConnectTo(origin_addr_);
}

OwnListeners Connection::Own() const {
  return {worker_.ctx().options.proxy_port, worker_.ctx().sandboxes,
          /*refuse_loopback=*/sandbox_ && sandbox_->own_netns, worker_.ctx().host_addresses,
          worker_.ctx().options.metrics_port};
}

// ---- the end ---------------------------------------------------------------

std::string Connection::AddressForLog(bool upstream) const {
  if (upstream && upstream_addr_) return FormatAddressPort(*upstream_addr_, origin_port_);
  if (!sandbox_) return "";  // no original destination was found
  return FormatAddressPort(origin_addr_, origin_port_);
}

void Connection::Close(const std::string& why) {
  if (phase_ == Phase::kClosing) return;
  if (session_) session_->OnConnectionClosed();
  if (AccessLogEnabled()) {
    const char* mode = mode_ == Mode::kTunnel ? "tunnel"
                       : mode_ == Mode::kHttp ? (client_tls_ ? "intercepted" : "http")
                                              : "none";
    std::string_view host = decided_host_.empty() ? last_host_ : decided_host_;
    AccessDecision decision = tally_.decision();
    if (mode_ == Mode::kHttp && session_ &&
        session_->last_decision() != AccessDecision::kUndecided) {
      host = session_->last_host();  // an HTTP connection is its last request
      decision = session_->last_decision();
    }
    LogConnection(id_,
                  {.instance = sandbox_ ? std::string_view(sandbox_->instance) : "",
                   .host = host,
                   .address = AddressForLog(decision != AccessDecision::kDenied)},
                  mode, decision, tally_, why);
  }
  // The client left between requests: a clean upstream serves the next one.
  if (UpstreamReusable()) CloseUpstream();
  phase_ = Phase::kClosing;
  CountParked();
  CancelDeadline();
  if (idle_armed_) {
    idle_armed_ = false;
    io_uring_sqe* sqe = worker_.GetSqe();
    io_uring_prep_timeout_remove(sqe, EncodeOp(this, OpKind::kIdleTimer), 0);
    io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kCancel));
    pending_++;
  }
  for (const UniqueFd* fd : {&client_fd_, &upstream_fd_, &retiring_fd_}) {
    if (!fd->valid()) continue;
    io_uring_sqe* sqe = worker_.GetSqe();
    io_uring_prep_cancel_fd(sqe, fd->get(), IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kCancel));
    pending_++;
  }
  MaybeFinish();
}

void Connection::MaybeFinish() {
  // Freed by the worker at the end of the completion batch, not here.
  if (phase_ == Phase::kClosing && pending_ == 0) worker_.Destroy(this);
}

void Connection::OnCompletion(OpKind kind, int res, uint32_t /*flags*/) {
  pending_--;
  switch (kind) {
    case OpKind::kClientRecv:
      OnRecv(true, res);
      break;
    case OpKind::kUpstreamRecv:
      OnRecv(false, res);
      break;
    case OpKind::kClientSend:
      OnSend(false, res);
      break;
    case OpKind::kUpstreamSend:
      OnSend(true, res);
      break;
    case OpKind::kConnect:
      OnConnected(res);
      break;
    case OpKind::kDeadline:
      deadlines_in_flight_--;
      if (stale_deadlines_ > 0) {
        stale_deadlines_--;
      } else if (res == -ETIME && deadline_armed_) {
        deadline_armed_ = false;
        OnDeadline();
      }
      break;
    case OpKind::kIdleTimer:
      OnIdleTimer(res);
      break;
    case OpKind::kClientReadable:
      OnReadable(true, res);
      break;
    case OpKind::kUpstreamReadable:
      OnReadable(false, res);
      break;
    case OpKind::kConnectTimeout:
    case OpKind::kCancel:
    default:
      break;
  }
  MaybeFinish();
}

}  // namespace egressd::proxy
