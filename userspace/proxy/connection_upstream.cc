// The upstream side of a connection: the decided name resolved (the
// upstream choice picks the address, never the sandbox), the connect (or an
// idle upstream from the pool), egressd's own verified TLS to an intercepted
// connection's upstream, and the routing of each HTTP request (the open
// upstream when it still fits, else a new one).
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "userspace/proxy/connection.h"
#include "userspace/proxy/resource_shortage.h"
#include "userspace/proxy/upstream_choice.h"
#include "userspace/proxy/upstream_pool.h"
#include "userspace/proxy/uring_time.h"
#include "userspace/proxy/worker.h"

namespace egressd::proxy {

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
  dns::Resolver::AnswerWatch watch;
  auto cached = worker_.ctx().resolver->Lookup(
      host,
      [worker, id](const dns::ResolveResult& r) {
        worker->Post([worker, id, r] {
          if (Connection* c = worker->FindConnection(id)) c->OnResolved(r);
        });
      },
      &watch);
  // This worker's ring waits for the answers (no wake-up of the resolver's thread).
  if (watch.attempt != 0) worker_.WatchDnsAnswer(watch.fd, watch.attempt);
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
  // The connection moved on meanwhile (its answer is out, it is draining):
  // nothing waits for this name any more.
  if (phase_ != Phase::kResolving || close_after_flush_) return;
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
  // A connect whose socket CloseUpstream retired meanwhile: only that
  // socket's end is left to do.
  if (RetireDone(res)) return;
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
  upstream_active_ = std::chrono::steady_clock::now();
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

void Connection::CloseUpstream() {
  // Decided before anything is cleared: the pool's key names the host.
  std::string pool_key = UpstreamReusable() ? PoolKey(*upstream_addr_) : "";
  decided_host_.clear();
  upstream_from_pool_ = false;
  upstream_bound_to_client_ = false;
  connect_waiting_.reset();  // a connect for the request before is moot now
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

}  // namespace egressd::proxy
