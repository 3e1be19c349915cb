#include "userspace/proxy/connection.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "userspace/audit/denial.h"
#include "userspace/common/rate_limited_warning.h"
#include "userspace/protocol/http_fields.h"
#include "userspace/protocol/http_sniff.h"
#include "userspace/protocol/http_upgrade.h"
#include "userspace/protocol/tls_alert.h"
#include "userspace/protocol/tls_client_hello.h"
#include "userspace/proxy/original_destination.h"
#include "userspace/proxy/resource_shortage.h"
#include "userspace/proxy/upstream_choice.h"
#include "userspace/proxy/worker.h"
#include "userspace/secrets/secret_store.h"

namespace egressd::proxy {
namespace {

constexpr size_t kClassifyLimit = 16 * 1024;  // at most this much is peeked
constexpr auto kDrainTime = std::chrono::seconds(2);

int64_t Seconds(std::chrono::milliseconds ms) {
  return std::chrono::duration_cast<std::chrono::seconds>(ms).count();
}

__kernel_timespec ToTimespec(std::chrono::milliseconds ms) {
  __kernel_timespec ts{};
  ts.tv_sec = ms.count() / 1000;
  ts.tv_nsec = (ms.count() % 1000) * 1000000;
  return ts;
}

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
  // We relay what arrives as it arrives: Nagle plus the peer's delayed ACK
  // would hold small writes back for tens of milliseconds.
  int one = 1;
  setsockopt(client_fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

void Connection::ResolveAndConnect(const std::string& host) {
  decided_host_ = host;
  phase_ = Phase::kResolving;
  resolving_for_tcp_ = false;
  if (auto literal = policy::IpAddress::Parse(host)) {
    OnResolvedNow(dns::ResolveResult{{*literal}, ""});
    return;
  }
  LookupHost(host);
}

// Resolves through egressd's resolver: a cached answer is used at once,
// otherwise the answer arrives later on this worker (OnResolved).
void Connection::LookupHost(const std::string& host) {
  Worker* worker = &worker_;
  uint64_t id = id_;
  auto cached = worker_.ctx().resolver->Lookup(host, [worker, id](const dns::ResolveResult& r) {
    worker->Post([worker, id, r] {
      if (Connection* c = worker->FindConnection(id)) c->OnResolved(r);
    });
  });
  if (cached) {
    OnResolvedNow(*cached);
  } else {
    resolve_pending_ = true;
    pending_++;
  }
}

void Connection::OnResolved(const dns::ResolveResult& result) {
  if (resolve_pending_) {
    resolve_pending_ = false;
    pending_--;
  }
  if (phase_ == Phase::kClosing) {
    MaybeFinish();
    return;
  }
  OnResolvedNow(result);
}

void Connection::OnResolvedNow(const dns::ResolveResult& result) {
  if (resolving_for_tcp_) {
    resolving_for_tcp_ = false;
    bool match = result.ok() && std::find(result.addrs.begin(), result.addrs.end(), origin_addr_) !=
                                    result.addrs.end();
    if (match) {
      PassToOriginal("allow_tcp by name");
      return;
    }
    tcp_host_index_++;
    CheckNextTcpHost();
    return;
  }
  auto view = CurrentView();
  if (!result.ok()) {
    view->counters->upstream_errors++;
    RefuseUpstream(502, ReplyReason::kUpstreamUnresolved,
                   "name " + decided_host_ + " does not resolve (" + result.error + ")");
    return;
  }
  UpstreamChoice choice =
      ChooseUpstream(result.addrs, origin_addr_, origin_port_, *view->policy, Own());
  if (!choice.addr && view->audit()) {
    // Refused by deny_cidrs (an own listener stays refused below).
    UpstreamChoice unenforced = ChooseUpstream(result.addrs, origin_addr_, origin_port_,
                                               *view->policy, Own(), /*apply_deny_cidrs=*/false);
    if (unenforced.addr && !Enforce(decided_host_, "host " + decided_host_ + ": " + choice.error))
      choice = unenforced;
  }
  if (!choice.addr) {
    if (mode_ == Mode::kHttp) view->counters->requests_denied++;
    RefuseUpstream(403, ReplyReason::kDeniedAddress, "host " + decided_host_ + ": " + choice.error);
    return;
  }
  ConnectTo(*choice.addr);
}

void Connection::RefuseUpstream(int http_status, ReplyReason reason, const std::string& why) {
  if (mode_ != Mode::kHttp) {
    DenyConnection(why);
    return;
  }
  uint64_t seq = http_status == 403 ? RecordEnforced(decided_host_, why) : 0;
  session_->Reply({http_status, reason, why, "", seq});
}

void Connection::ConnectTo(const policy::IpAddress& addr) {
  if (retiring_fd_.valid()) {
    // The previous upstream still has operations in flight: connect once
    // they are done, so completions never mix two upstream sockets.
    connect_waiting_ = addr;
    phase_ = Phase::kConnecting;
    return;
  }
  if (!TakeBuffer(down_)) {
    FailForResources("no memory for the connection's relay buffer");
    return;
  }
  if (TakePooledUpstream(addr)) return;
  upstream_sa_ = {};
  socklen_t len;
  if (addr.is_v4()) {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&upstream_sa_);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(origin_port_);
    memcpy(&in4->sin_addr, addr.bytes.data() + 12, 4);
    len = sizeof(*in4);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&upstream_sa_);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(origin_port_);
    memcpy(&in6->sin6_addr, addr.bytes.data(), 16);
    len = sizeof(*in6);
  }
  const int family = addr.is_v4() ? AF_INET : AF_INET6;
  upstream_fd_.Reset(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!upstream_fd_.valid() && (errno == EMFILE || errno == ENFILE) && worker_.upstream_pool() &&
      worker_.upstream_pool()->size() > 0) {
    // Idle upstreams kept for reuse give their descriptors up first.
    worker_.upstream_pool()->Clear();
    upstream_fd_.Reset(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  if (!upstream_fd_.valid()) {
    // Out of fds or memory (resource_shortage.h): this request fails, counted.
    std::string why = std::string("no socket for the upstream: ") + strerror(errno);
    worker_.ctx().counters->upstream_socket_errors++;
    WarnResourceShortage(*worker_.ctx().counters, why);
    FailForResources(why);
    return;
  }
  int one = 1;
  setsockopt(upstream_fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  upstream_addr_ = addr;
  phase_ = Phase::kConnecting;
  connect_clock_.Start();
  connect_timeout_ = ToTimespec(worker_.ctx().options.connect_timeout);
  worker_.ReserveSqes(2);  // the linked pair must not be split by a submit
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_connect(sqe, upstream_fd_.get(), reinterpret_cast<sockaddr*>(&upstream_sa_), len);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kConnect));
  sqe->flags |= IOSQE_IO_LINK;
  sqe = worker_.GetSqe();
  io_uring_prep_link_timeout(sqe, &connect_timeout_, 0);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kConnectTimeout));
  pending_ += 2;
  upstream_ops_++;
}

void Connection::OnConnected(int res) {
  upstream_ops_--;
  if (phase_ == Phase::kClosing) return;
  auto view = CurrentView();
  if (res < 0) {
    view->counters->upstream_errors++;
    bool timeout = res == -ECANCELED;
    std::string why =
        timeout ? fmt::format("connect to {}:{} took longer than {} s", upstream_addr_->ToString(),
                              origin_port_, Seconds(worker_.ctx().options.connect_timeout))
                : fmt::format("connect to {}:{} failed: {}", upstream_addr_->ToString(),
                              origin_port_, strerror(-res));
    upstream_fd_.Reset();
    uint64_t seq = 0;
    if (timeout) {
      view->counters->connect_timeouts++;
      seq = RecordEnforced(decided_host_, why);
    }
    if (mode_ == Mode::kHttp) {
      session_->Reply({timeout ? 504 : 502,
                       timeout ? ReplyReason::kUpstreamTimeout : ReplyReason::kUpstreamUnreachable,
                       why, "", seq});
    } else {
      Close(why);
    }
    return;
  }
  view->counters->upstream_connect.Observe(connect_clock_.Elapsed());
  OnUpstreamReady();
}

void Connection::OnUpstreamReady() {
  tally_.Allowed();
  if (!decided_host_.empty()) last_host_ = decided_host_;
  if (mode_ == Mode::kTunnel) {
    phase_ = Phase::kTunnel;
    // Rules may have changed while we resolved and connected.
    RecheckTunnel();
    if (phase_ != Phase::kTunnel) return;
    up_.ready = up_.scanned = up_.end;
    Pump();
    return;
  }
  if (client_tls_ && !upstream_tls_) {
    StartUpstreamTls();
    return;
  }
  phase_ = Phase::kHttp;
  session_->StartForwarding();
}

void Connection::StartUpstreamTls() {
  auto stream = worker_.ctx().tls_client->NewStream(
      {.sandbox = sandbox_->generation,
       .host = decided_host_,
       .port = origin_port_,
       .address = upstream_addr_ ? upstream_addr_->ToString() : ""});
  if (!stream.ok()) {
    CurrentView()->counters->upstream_tls_errors++;
    session_->Reply(
        {502, ReplyReason::kUpstreamTls, "upstream TLS: " + stream.status().message(), "", 0});
    return;
  }
  upstream_tls_ = std::make_unique<TlsSide>(std::move(*stream));
  phase_ = Phase::kUpstreamTls;
  if (upstream_tls_->stream().Handshake() == tls::TlsIo::kError) {
    OnTlsFailure(false);
    return;
  }
  ArmDeadline(worker_.ctx().options.connect_timeout);
  Pump();
}

void Connection::OnTlsFailure(bool client) {
  const tls::TlsError& error = Tls(client)->stream().error();
  if (client) {
    if (error.kind == tls::TlsErrorKind::kNoApplicationProtocol) {
      RecordEnforced(intercepted_sni_,
                     "the client offers no HTTP/1.1 in ALPN: HTTP/2 is not interceptable yet");
    } else {
      spdlog::debug("proxy: connection {}: TLS with the sandbox failed: {} ({})", id_, error.reason,
                    error.detail);
    }
    // The alert that says why goes out; then the connection ends.
    close_after_flush_ = true;
    Pump();
    return;
  }
  CurrentView()->counters->upstream_tls_errors++;
  std::string reason = error.kind == tls::TlsErrorKind::kNone
                           ? "the upstream closed the connection during the handshake"
                           : error.reason;
  std::string why =
      fmt::format("upstream TLS with {} ({}:{}) failed: {}", decided_host_,
                  upstream_addr_ ? upstream_addr_->ToString() : "-", origin_port_, reason);
  uint64_t seq = RecordEnforced(decided_host_, why);
  if (phase_ == Phase::kUpstreamTls) {
    CancelDeadline();
    // Nothing of the request went upstream.
    session_->Reply({502,
                     error.kind == tls::TlsErrorKind::kCertificate
                         ? ReplyReason::kUpstreamCertificate
                         : ReplyReason::kUpstreamTls,
                     why, "", seq});
  } else {
    Close(why);
  }
}

// ---- what the HTTP session asks for ---------------------------------------

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

void Connection::RouteRequest(const std::string& host) {
  auto view = CurrentView();
  if (upstream_fd_.valid() && decided_host_ == host &&
      RefuseUpstreamAddress(*upstream_addr_, origin_port_, *view->policy, Own(), !view->audit())
          .empty()) {
    session_->StartForwarding();  // same host, still allowed: reuse the open upstream connection
    return;
  }
  CloseUpstream();
  ResolveAndConnect(host);
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

void Connection::SendReplyThenClose(std::string bytes) {
  reply_ = std::move(bytes);
  // Nothing else from this client is forwarded after a refusal.
  up_.ready = up_.start;
  CloseUpstream();
  phase_ = Phase::kHttp;
  close_after_flush_ = true;
  Pump();
}

void Connection::CloseAfterFlush() {
  close_after_flush_ = true;
  Pump();
}

void Connection::ArmResponseDeadline() {
  ArmDeadline(worker_.ctx().options.response_timeout);
}

void Connection::ArmHeadDeadline() {
  if (!deadline_armed_) ArmDeadline(worker_.ctx().options.head_timeout);
}

void Connection::StartWebSocket(const protocol::HeaderFields& response_headers) {
  mode_ = Mode::kTunnel;
  phase_ = Phase::kTunnel;
  bool deflate = protocol::NegotiatesPermessageDeflate(response_headers);
  ws_from_client_ = std::make_unique<protocol::WebSocketFrameValidator>(
      protocol::WebSocketRules{.from_client = true, .rsv1_allowed = deflate});
  ws_from_server_ = std::make_unique<protocol::WebSocketFrameValidator>(
      protocol::WebSocketRules{.from_client = false, .rsv1_allowed = deflate});
  // What the client sent after its request (held until now) and what the
  // upstream sent after its 101 are frames already.
  if (!ReleaseTunnelBytes(true) || !ReleaseTunnelBytes(false)) return;
  Pump();
}

bool Connection::ReleaseTunnelBytes(bool client) {
  Direction& d = client ? up_ : down_;
  auto& frames = client ? ws_from_client_ : ws_from_server_;
  if (!frames) {
    d.ready = d.scanned = d.end;
    return true;
  }
  if (frames->Feed({d.buf.get() + d.scanned, d.end - d.scanned}) ==
      protocol::WebSocketFrameValidator::Result::kViolation) {
    std::string why = fmt::format("WebSocket frame from the {} refused: {}",
                                  client ? "client" : "upstream", frames->error());
    CurrentView()->counters->websocket_violations++;
    if (!Enforce(decided_host_, why)) {
      // Audit mode: reported; the tunnel goes on unchecked.
      ws_from_client_.reset();
      ws_from_server_.reset();
      up_.ready = up_.scanned = up_.end;
      down_.ready = down_.scanned = down_.end;
      return true;
    }
    Close(why);  // none of these bytes goes
    return false;
  }
  // A frame header is decided once complete: until then its bytes wait, and
  // those of a stream that ends inside one never go.
  d.scanned = d.end;
  d.ready = d.end - frames->held();
  if (d.eof) d.end = d.scanned = d.ready;
  return true;
}

void Connection::CloseUpstream() {
  // Decided before anything is cleared: the pool's key names the host.
  std::string pool_key = UpstreamReusable() ? PoolKey(*upstream_addr_) : "";
  decided_host_.clear();
  upstream_from_pool_ = false;
  // Request bytes meant for this upstream never go to the next one.
  if (up_.send_pending) {
    up_discard_to_ = up_.ready;
    up_discard_pending_ = true;
  } else {
    up_.DiscardUpTo(up_.ready);
  }
  if (!upstream_fd_.valid()) return;
  if (!pool_key.empty()) {
    RetireToPool(std::move(pool_key));
  } else if (upstream_ops_ == 0) {
    upstream_fd_.Reset();
    upstream_tls_.reset();
  } else {
    retiring_tls_ = std::move(upstream_tls_);  // an op in flight may use its buffers
    // Operations in flight: they finish with errors; the socket closes then.
    shutdown(upstream_fd_.get(), SHUT_RDWR);
    retiring_fd_ = std::move(upstream_fd_);
  }
  down_.eof = false;
  down_.shut_written = false;
  up_.shut_written = false;
}

// ---- moving bytes ----------------------------------------------------------

void Connection::Pump() {
  if (phase_ == Phase::kClosing) return;
  bool upstream_live = upstream_fd_.valid() && (phase_ == Phase::kTunnel || phase_ == Phase::kHttp);
  bool upstream_io = upstream_live || (upstream_fd_.valid() && phase_ == Phase::kUpstreamTls);

  // Plaintext into the TLS sides (what may go, and a reply of our own).
  if (client_tls_) {
    client_tls_->Encrypt(down_);
    if (!reply_.empty() && !down_.HasUnsent()) {
      size_t n =
          client_tls_->EncryptOwn({reinterpret_cast<const uint8_t*>(reply_.data()), reply_.size()});
      reply_.erase(0, n);
    }
  }
  if (upstream_tls_ && upstream_live) upstream_tls_->Encrypt(up_);

  up_.Compact(BufferInUse(up_));
  down_.Compact(BufferInUse(down_));

  // Sends.
  if (upstream_io && !up_.send_pending &&
      (upstream_tls_ ? !upstream_tls_->ToSend().empty() : up_.HasUnsent()))
    ArmSend(true);
  if (!down_.send_pending) {
    if (client_tls_) {
      if (!client_tls_->ToSend().empty()) ArmSend(false);
    } else if (down_.HasUnsent()) {
      ArmSend(false);
    } else if (!reply_.empty()) {
      ArmSendReply();
    }
  }

  // Receives (a TLS side also waits for room in its plaintext direction).
  auto room = [this](bool client) {
    Direction& d = client ? up_ : down_;
    if (!d.buf || d.end == d.cap) return false;
    TlsSide* t = Tls(client);
    return !t || !t->RecvSpace().empty();
  };
  if (phase_ != Phase::kDraining && !close_after_flush_ && !up_.recv_pending && !up_.eof &&
      room(true))
    ArmRecv(true);
  if (phase_ == Phase::kDraining && !up_.recv_pending) ArmRecv(true);
  // In HTTP the upstream is read even while idle, to notice it closing.
  bool want_response = phase_ == Phase::kTunnel || phase_ == Phase::kUpstreamTls ||
                       (phase_ == Phase::kHttp && !close_after_flush_);
  if (upstream_io && want_response && !down_.recv_pending && !down_.eof && room(false))
    ArmRecv(false);

  // Half-closes and the end of a tunnel.
  if (phase_ == Phase::kTunnel) {
    if (up_.eof && up_.Drained() && !up_.send_pending && !up_.shut_written &&
        upstream_fd_.valid() && ReadyToShutWrite(false)) {
      shutdown(upstream_fd_.get(), SHUT_WR);
      up_.shut_written = true;
    }
    if (down_.eof && down_.Drained() && !down_.send_pending && !down_.shut_written &&
        ReadyToShutWrite(true)) {
      shutdown(client_fd_.get(), SHUT_WR);
      down_.shut_written = true;
    }
    if (up_.shut_written && down_.shut_written) Close("done");
    return;
  }
  if (close_after_flush_ && phase_ != Phase::kDraining && !down_.send_pending &&
      !down_.HasUnsent() && reply_.empty() && ReadyToShutWrite(true)) {
    // Our last byte is out. Half-close and read what the client still sends,
    // so closing does not reset the connection before it reads our answer.
    shutdown(client_fd_.get(), SHUT_WR);
    CloseUpstream();
    phase_ = Phase::kDraining;
    up_.Reset();
    ArmDeadline(std::chrono::duration_cast<std::chrono::milliseconds>(kDrainTime));
    if (!up_.recv_pending) ArmRecv(true);
  }
}

bool Connection::ReadyToShutWrite(bool client) {
  TlsSide* t = Tls(client);
  if (!t) return true;
  if (t->ShutdownAndFlushed()) return true;
  Direction& d = client ? down_ : up_;  // what goes out on that socket
  if (!d.send_pending) ArmSend(!client);
  return false;
}

bool Connection::BufferInUse(const Direction& d) const {
  // Receives into and sends from a Direction's own buffer happen only on a
  // plain side; a TLS side has buffers of its own.
  if (&d == &up_) return (up_.recv_pending && !client_tls_) || (up_.send_pending && !upstream_tls_);
  return (down_.recv_pending && !upstream_tls_) || (down_.send_pending && !client_tls_);
}

void Connection::ArmRecv(bool client) {
  Direction& d = client ? up_ : down_;
  if (!d.buf) return;
  if (phase_ == Phase::kDraining) d.Reset();  // drained bytes are discarded
  std::span<uint8_t> into{d.buf.get() + d.end, d.cap - d.end};
  if (TlsSide* t = Tls(client); t && phase_ != Phase::kDraining) into = t->RecvSpace();
  if (into.empty()) return;
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_recv(sqe, client ? client_fd_.get() : upstream_fd_.get(), into.data(), into.size(),
                     0);
  io_uring_sqe_set_data64(sqe,
                          EncodeOp(this, client ? OpKind::kClientRecv : OpKind::kUpstreamRecv));
  d.recv_pending = true;
  pending_++;
  if (!client) upstream_ops_++;
}

void Connection::ArmSend(bool to_upstream) {
  Direction& d = to_upstream ? up_ : down_;
  TlsSide* t = Tls(!to_upstream);
  std::span<const uint8_t> bytes = t ? t->ToSend() : d.NextToSend();
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_send(sqe, to_upstream ? upstream_fd_.get() : client_fd_.get(), bytes.data(),
                     bytes.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(
      sqe, EncodeOp(this, to_upstream ? OpKind::kUpstreamSend : OpKind::kClientSend));
  d.send_pending = true;
  pending_++;
  if (to_upstream) upstream_ops_++;
}

void Connection::ArmSendReply() {
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_send(sqe, client_fd_.get(), reply_.data(), reply_.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kClientSend));
  down_.send_pending = true;
  sending_reply_ = true;
  pending_++;
}

void Connection::OnRecv(bool client, int res) {
  Direction& d = client ? up_ : down_;
  d.recv_pending = false;
  bool cancelled_to_park = std::exchange(d.parking, Parking::kNo) == Parking::kCancelling;
  if (res > 0) last_byte_ = std::chrono::steady_clock::now();
  if (!client && RetireDone(res)) return;
  if (phase_ == Phase::kClosing) return;
  if (cancelled_to_park && res == -ECANCELED) {
    Park(client);
    return;
  }
  if (phase_ == Phase::kDraining) {
    if (res <= 0) {
      Close("drained");
    } else {
      ArmRecv(true);
    }
    return;
  }
  if (res < 0) {
    if (!client && session_ && session_->ResendOnNewUpstream()) return;
    Close(fmt::format("{} recv: {}", client ? "client" : "upstream", strerror(-res)));
    return;
  }
  TlsSide* t = Tls(client);
  if (res == 0) {
    if (t) {
      t->ReceivedEof();
    } else {
      d.eof = true;
    }
  } else if (t) {
    t->Received(static_cast<size_t>(res));
  } else {
    d.end += static_cast<size_t>(res);
  }
  Deliver(client);
}

void Connection::Deliver(bool client) {
  Direction& d = client ? up_ : down_;
  if (TlsSide* t = Tls(client)) {
    if (t->Decrypt(d) == tls::TlsIo::kError) {
      OnTlsFailure(client);
      return;
    }
    if (client && !client_handshake_acked_ && t->stream().handshake_done()) {
      // We send nothing after the client's Finished (no tickets), so its ACK
      // would be delayed, and a client with Nagle on holds its request
      // behind the unacknowledged Finished for ~40 ms: ACK it now.
      client_handshake_acked_ = true;
      int one = 1;
      setsockopt(client_fd_.get(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
    if (!client && phase_ == Phase::kUpstreamTls) {
      if (!t->stream().handshake_done()) {
        if (d.eof) {
          OnTlsFailure(false);
          return;
        }
        Pump();  // the handshake's next flight
        return;
      }
      // Verified: the request held until now goes.
      (t->stream().resumed() ? worker_.ctx().counters->upstream_tls_resumed
                             : worker_.ctx().counters->upstream_tls_full)++;
      CancelDeadline();
      phase_ = Phase::kHttp;
      session_->StartForwarding();
      if (d.end > d.scanned || d.eof) session_->OnUpstreamBytes();
      return;
    }
  }
  switch (phase_) {
    case Phase::kClassifying:
      if (d.eof) {
        Close("client closed before classification");
        return;
      }
      Classify();
      if (phase_ == Phase::kClassifying) Pump();
      return;
    case Phase::kResolving:
    case Phase::kConnecting:
    case Phase::kUpstreamTls:
      if (client && d.eof && mode_ == Mode::kHttp) {
        Close("client closed while its request was pending");
        return;
      }
      Pump();  // keep buffering; forwarded once the upstream is ready
      return;
    case Phase::kTunnel:
      if (ReleaseTunnelBytes(client)) Pump();
      return;
    case Phase::kHttp:
      if (client) {
        session_->OnClientBytes();
      } else {
        session_->OnUpstreamBytes();
      }
      return;
    default:
      return;
  }
}

void Connection::OnSend(bool to_upstream, int res) {
  Direction& d = to_upstream ? up_ : down_;
  d.send_pending = false;
  if (res > 0) last_byte_ = std::chrono::steady_clock::now();
  if (to_upstream && RetireDone(res)) {
    if (up_discard_pending_) {
      up_.DiscardUpTo(up_discard_to_);
      up_discard_pending_ = false;
    }
    if (phase_ != Phase::kClosing) Pump();
    return;
  }
  if (!to_upstream && sending_reply_ && (phase_ == Phase::kClosing || res < 0))
    sending_reply_ = false;
  if (phase_ == Phase::kClosing) return;
  if (res < 0) {
    if (to_upstream && session_ && session_->ResendOnNewUpstream()) return;
    Close(fmt::format("send to {}: {}", to_upstream ? "upstream" : "client", strerror(-res)));
    return;
  }
  if (!to_upstream && sending_reply_) {
    sending_reply_ = false;
    reply_.erase(0, static_cast<size_t>(res));
    Pump();
    return;
  }
  if (TlsSide* t = Tls(!to_upstream)) {
    t->Consumed(static_cast<size_t>(res));
  } else {
    d.Sent(static_cast<size_t>(res));
  }
  if (sandbox_) {
    if (to_upstream) {
      sandbox_->counters->bytes_up += static_cast<uint64_t>(res);
      tally_.BytesUp(static_cast<uint64_t>(res));
    } else {
      sandbox_->counters->bytes_down += static_cast<uint64_t>(res);
      tally_.BytesDown(static_cast<uint64_t>(res));
    }
  }
  // A refused request must not leave: if the head being decided is still in
  // the buffer, the send window never reaches it (ready stops before it).
  Pump();
  if (phase_ == Phase::kHttp && to_upstream) session_->OnUpstreamSent();
  // Room was made in the direction this send drained: a TLS side that
  // stopped decrypting for lack of it goes on.
  bool source_client = to_upstream;
  if (TlsSide* t = Tls(source_client);
      t && t->HasInput() && (phase_ == Phase::kHttp || phase_ == Phase::kTunnel))
    Deliver(source_client);
}

// Completions of an upstream socket that CloseUpstream retired are dropped;
// the last one closes it and starts a connect that was waiting for it.
bool Connection::RetireDone(int res) {
  upstream_ops_--;
  if (!retiring_fd_.valid()) return false;
  if (upstream_ops_ == 0) {
    // Only a receive cancelled with nothing received leaves a clean upstream.
    if (!retiring_pool_key_.empty() && res == -ECANCELED) {
      PutRetiredInPool();
    } else {
      retiring_pool_key_.clear();
      retiring_fd_.Reset();
      retiring_tls_.reset();
    }
    if (connect_waiting_ && phase_ != Phase::kClosing) {
      policy::IpAddress addr = *connect_waiting_;
      connect_waiting_.reset();
      ConnectTo(addr);
    }
  }
  return true;
}

// ---- deadlines and timers -------------------------------------------------

void Connection::ArmDeadline(std::chrono::milliseconds after) {
  if (deadline_armed_) CancelDeadline();
  deadline_ = ToTimespec(after);
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_timeout(sqe, &deadline_, 0, 0);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kDeadline));
  // Earlier deadlines still in flight complete first (fired or removed):
  // their completions must not be taken for this one.
  stale_deadlines_ = deadlines_in_flight_;
  deadlines_in_flight_++;
  deadline_armed_ = true;
  pending_++;
}

void Connection::CancelDeadline() {
  if (!deadline_armed_) return;
  deadline_armed_ = false;
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_timeout_remove(sqe, EncodeOp(this, OpKind::kDeadline), 0);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kCancel));
  pending_++;
}

void Connection::OnDeadline() {
  if (phase_ == Phase::kClassifying) {
    DenyOrPass("no TLS ClientHello or HTTP request in time");
  } else if (phase_ == Phase::kHttp && session_ && session_->reading_head()) {
    if (client_tls_ && !client_tls_->stream().handshake_done()) {
      Close("TLS handshake with the sandbox not complete in time");
      return;
    }
    if (up_.end == up_.start) {
      Close("no request in time");  // nothing to answer
      return;
    }
    CurrentView()->counters->header_timeouts++;
    std::string why = fmt::format("request head not complete within {} s",
                                  Seconds(worker_.ctx().options.head_timeout));
    session_->Reply({408, ReplyReason::kHeaderTimeout, why, "", RecordEnforced("", why)});
  } else if (phase_ == Phase::kHttp && session_ && session_->awaiting_response()) {
    CurrentView()->counters->response_timeouts++;
    std::string why = fmt::format("{} sent no response within {} s", decided_host_,
                                  Seconds(worker_.ctx().options.response_timeout));
    session_->Reply(
        {504, ReplyReason::kResponseTimeout, why, "", RecordEnforced(decided_host_, why)});
  } else if (phase_ == Phase::kDraining) {
    Close("drain time over");
  } else if (phase_ == Phase::kUpstreamTls) {
    CurrentView()->counters->upstream_tls_errors++;
    std::string why = fmt::format("upstream TLS handshake with {} ({}:{}) took too long",
                                  decided_host_, upstream_addr_->ToString(), origin_port_);
    session_->Reply(
        {504, ReplyReason::kUpstreamTimeout, why, "", RecordEnforced(decided_host_, why)});
  }
}

void Connection::ArmIdleTimer(std::chrono::nanoseconds after) {
  idle_after_.tv_sec = after.count() / 1000000000;
  idle_after_.tv_nsec = after.count() % 1000000000;
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_timeout(sqe, &idle_after_, 0, 0);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kIdleTimer));
  idle_armed_ = true;
  pending_++;
}

// The timer runs from the last byte: when it fires early (bytes moved
// since it was armed) it is armed again for the rest of the period.
void Connection::OnIdleTimer(int res) {
  idle_armed_ = false;
  if (phase_ == Phase::kClosing || res != -ETIME) return;
  const std::chrono::nanoseconds limit = worker_.ctx().options.idle_timeout;
  auto quiet = std::chrono::steady_clock::now() - last_byte_;
  // Resolving, connecting and draining have deadlines of their own.
  bool own_deadline = phase_ == Phase::kResolving || phase_ == Phase::kConnecting ||
                      phase_ == Phase::kUpstreamTls || phase_ == Phase::kDraining;
  if (quiet >= kParkAfter && !own_deadline) MaybePark();
  if (quiet < limit || own_deadline) {
    std::chrono::nanoseconds next = own_deadline ? limit : limit - quiet;
    // Not parked yet: look again when it has been quiet long enough.
    if (!Parked())
      next = std::min<std::chrono::nanoseconds>(
          next, quiet < kParkAfter ? kParkAfter - quiet : kParkAfter);
    ArmIdleTimer(next);
    return;
  }
  CurrentView()->counters->idle_timeouts++;
  CloseWithEvent(fmt::format(
      "idle timeout: no byte either way for {} s",
      std::chrono::duration_cast<std::chrono::seconds>(worker_.ctx().options.idle_timeout)
          .count()));
}

// ---- denies ----------------------------------------------------------------

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
