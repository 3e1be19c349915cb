#include "userspace/proxy/connection.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "userspace/protocol/http_sniff.h"
#include "userspace/protocol/http_upgrade.h"
#include "userspace/protocol/tls_client_hello.h"
#include "userspace/proxy/upstream_choice.h"
#include "userspace/proxy/worker.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace egressd::proxy {
namespace {

constexpr size_t kClassifyLimit = 16 * 1024;  // at most this much is peeked
constexpr auto kDrainTime = std::chrono::seconds(2);

__kernel_timespec ToTimespec(std::chrono::milliseconds ms) {
  __kernel_timespec ts{};
  ts.tv_sec = ms.count() / 1000;
  ts.tv_nsec = (ms.count() % 1000) * 1000000;
  return ts;
}

const char* StatusText(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 502:
      return "Bad Gateway";
    default:
      return "Error";
  }
}

}  // namespace

Connection::Connection(Worker& worker, uint64_t id, int client_fd)
    : worker_(worker), id_(id), client_fd_(client_fd) {}

Connection::~Connection() {
  if (client_fd_ >= 0) close(client_fd_);
  if (upstream_fd_ >= 0) close(upstream_fd_);
  if (retiring_fd_ >= 0) close(retiring_fd_);
}

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
  setsockopt(client_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (!LookupOrigin()) return;
  sandbox_->counters->connections++;
  last_byte_ = std::chrono::steady_clock::now();
  ArmIdleTimer(worker_.ctx().options.idle_timeout);
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
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  uint64_t cookie = 0;
  socklen_t cookie_len = sizeof(cookie);
  egressd_orig_dst_key key{};
  bool have_key = getpeername(client_fd_, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
                  getsockopt(client_fd_, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &cookie_len) == 0;
  if (have_key) {
    key.netns_cookie = cookie;
    if (peer.ss_family == AF_INET) {
      auto* in4 = reinterpret_cast<sockaddr_in*>(&peer);
      key.client_addr[2] = htonl(0xffff);
      key.client_addr[3] = in4->sin_addr.s_addr;
      key.client_port = in4->sin_port;
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&peer);
      memcpy(key.client_addr, &in6->sin6_addr, 16);
      key.client_port = in6->sin6_port;
    }
  }
  std::optional<egressd_orig_dst> origin;
  if (have_key) origin = ctx.bpf->TakeOrigDst(key);
  if (!origin) {
    // Not redirected by our programs, or the record is gone: fail closed.
    ctx.counters->unknown_origin++;
    spdlog::warn("proxy: refused a connection with no recorded original destination");
    Close("no original destination");
    return false;
  }
  origin_ = *origin;
  sandbox_ = ctx.sandboxes->Find(origin_.sandbox_id);
  if (!sandbox_) {
    ctx.counters->unknown_sandbox++;
    spdlog::warn("proxy: refused a connection of unknown sandbox id {}", origin_.sandbox_id);
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
    up_.Allocate(worker_.ctx().options.buffer_bytes);
    ArmDeadline(worker_.ctx().options.classify_timeout);
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
      // The classification deadline keeps running until the head is complete.
      mode_ = Mode::kHttp;
      phase_ = Phase::kHttp;
      request_ = std::make_unique<protocol::HttpRequestStream>();
      HttpProcessClient();
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
      DenyOrPass(decision.reason);
      return;
    }
    view->counters->tls_passthrough++;
    PassToOriginal("TLS without SNI");
    return;
  }
  if (view->audit()) view->observed->Host(*sni);
  auto decision = policy.DecideTarget(*sni, origin_port_);
  if (decision.verdict != policy::HostVerdict::kAllowed &&
      !AuditOnly(*sni, "SNI " + *sni + ": " + decision.reason)) {
    decided_host_ = *sni;
    Deny("SNI " + *sni + ": " + decision.reason);
    return;
  }
  view->counters->tls_passthrough++;
  ResolveAndConnect(*sni);
}

void Connection::PassToOriginal(const char* why) {
  mode_ = Mode::kTunnel;
  decided_host_.clear();
  auto view = CurrentView();
  // Audit mode: the kernel reported a deny_cidrs hit on this address already.
  std::string refusal = RefuseUpstreamAddress(origin_addr_, origin_port_, *view->policy, Own(),
                                              /*apply_deny_cidrs=*/!view->audit());
  if (!refusal.empty()) {
    Deny(refusal);
    return;
  }
  if (view->audit()) view->observed->Tcp(FormatAddressPort(origin_addr_, origin_port_));
  spdlog::debug("proxy: {} -> {}:{} passed through ({})", sandbox_->instance,
                origin_addr_.ToString(), origin_port_, why);
  up_.Allocate(worker_.ctx().options.buffer_bytes);
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
    std::string why = "name " + decided_host_ + " does not resolve (" + result.error + ")";
    if (mode_ == Mode::kHttp) {
      HttpReply(502, why);
    } else {
      Deny(why);
    }
    return;
  }
  UpstreamChoice choice =
      ChooseUpstream(result.addrs, origin_addr_, origin_port_, *view->policy, Own());
  if (!choice.addr && view->audit()) {
    // Refused by deny_cidrs (an own listener stays refused below).
    UpstreamChoice unenforced = ChooseUpstream(result.addrs, origin_addr_, origin_port_,
                                               *view->policy, Own(), /*apply_deny_cidrs=*/false);
    if (unenforced.addr && AuditOnly(decided_host_, "host " + decided_host_ + ": " + choice.error))
      choice = unenforced;
  }
  if (!choice.addr) {
    if (mode_ == Mode::kHttp) {
      view->counters->requests_denied++;
      RecordDeny(decided_host_, choice.error);
      HttpReply(403, "host " + decided_host_ + ": " + choice.error);
    } else {
      Deny("host " + decided_host_ + ": " + choice.error);
    }
    return;
  }
  ConnectTo(*choice.addr);
}

void Connection::ConnectTo(const policy::IpAddress& addr) {
  if (retiring_fd_ >= 0) {
    // The previous upstream still has operations in flight: connect once
    // they are done, so completions never mix two upstream sockets.
    connect_waiting_ = addr;
    phase_ = Phase::kConnecting;
    return;
  }
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
  upstream_fd_ = socket(upstream_sa_.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (upstream_fd_ < 0) {
    Close(std::string("upstream socket: ") + strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(upstream_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  upstream_addr_ = addr;
  phase_ = Phase::kConnecting;
  connect_timeout_ = ToTimespec(worker_.ctx().options.connect_timeout);
  worker_.ReserveSqes(2);  // the linked pair must not be split by a submit
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_connect(sqe, upstream_fd_, reinterpret_cast<sockaddr*>(&upstream_sa_), len);
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
    std::string why = fmt::format("connect to {}:{} failed: {}", upstream_addr_->ToString(),
                                  origin_port_, res == -ECANCELED ? "timeout" : strerror(-res));
    close(upstream_fd_);
    upstream_fd_ = -1;
    if (mode_ == Mode::kHttp) {
      HttpReply(502, why);
    } else {
      Close(why);
    }
    return;
  }
  down_.Allocate(worker_.ctx().options.buffer_bytes);
  if (mode_ == Mode::kTunnel) {
    phase_ = Phase::kTunnel;
    up_.ready = up_.scanned = up_.end;
    Pump();
    return;
  }
  phase_ = Phase::kHttp;
  HttpStartForwarding();
}

// ---- HTTP ----------------------------------------------------------------

void Connection::HttpProcessClient() {
  // After a refusal nothing more from this client is parsed or forwarded.
  if (close_after_flush_ || !reply_.empty()) return;
  while (phase_ == Phase::kHttp) {
    if (http_step_ == HttpStep::kReadingHead) {
      if (up_.scanned == up_.end) break;
      // A head after the first must complete in time once it has begun (the
      // first runs under the classification deadline); an idle connection
      // between requests is the idle timer's.
      if (!deadline_armed_) ArmDeadline(worker_.ctx().options.head_timeout);
      auto step = request_->Feed({up_.buf.get() + up_.scanned, up_.end - up_.scanned});
      up_.scanned += step.consumed;
      if (step.event == protocol::HttpRequestStream::Event::kError) {
        CurrentView()->counters->bad_requests++;
        HttpReply(400, "malformed request: " + request_->error());
        return;
      }
      if (step.event == protocol::HttpRequestStream::Event::kHeadComplete) {
        head_end_ = up_.scanned;
        HttpOnHead();
        return;  // continues when the upstream is ready (HttpStartForwarding)
      }
      break;  // kNeedMore (the parser bounds a head to 16 KiB)
    }
    // kForwarding: the body of the current request, until it completes.
    if (request_done_) break;
    auto step = request_->Feed({up_.buf.get() + up_.scanned, up_.end - up_.scanned});
    up_.scanned += step.consumed;
    up_.ready = up_.scanned;
    if (step.event == protocol::HttpRequestStream::Event::kError) {
      CurrentView()->counters->bad_requests++;
      Close("malformed request body: " + request_->error());
      return;
    }
    if (step.event == protocol::HttpRequestStream::Event::kMessageComplete) {
      request_done_ = true;
      if (upgrade_) break;  // bytes after an upgrade request wait for the 101
      if (response_done_) HttpFinishTransaction();
      continue;
    }
    break;  // kNeedMore
  }
  Pump();
}

void Connection::HttpOnHead() {
  // The policy is read again for every request: a switch applies to the
  // next request on an open connection.
  CancelDeadline();
  auto view = CurrentView();
  const policy::CompiledPolicy& policy = *view->policy;
  const protocol::HttpRequestHead& head = request_->head();
  method_ = head.method;
  request_keep_alive_ = head.keep_alive;
  upgrade_ = false;
  request_done_ = response_done_ = false;
  if (view->audit()) view->observed->Host(head.host);
  auto decision = policy.DecideTarget(head.host, origin_port_);
  if (decision.verdict != policy::HostVerdict::kAllowed &&
      !AuditOnly(head.host, "request to host \"" + head.host + "\" denied by policy \"" +
                                policy.name() + "\": " + decision.reason)) {
    view->counters->requests_denied++;
    decided_host_ = head.host;
    RecordDeny(head.host, decision.reason);
    HttpReply(403, "request to host \"" + head.host + "\" denied by policy \"" + policy.name() +
                       "\": " + decision.reason);
    return;
  }
  if (head.has_body) {
    auto body = policy.DecideRequestBody(head.method, head.host);
    if (body.verdict != policy::HostVerdict::kAllowed && !AuditOnly(head.host, body.reason)) {
      view->counters->bad_requests++;
      RecordDeny(head.host, body.reason);
      HttpReply(400, body.reason);
      return;
    }
  }
  view->counters->requests_allowed++;
  // Only WebSocket may become a tunnel: other Upgrade tokens never reach the
  // upstream. The head being decided is [up_.ready, head_end_).
  auto upgrade = protocol::KeepOnlyWebSocketUpgrade(
      {reinterpret_cast<const char*>(up_.buf.get()) + up_.ready, head_end_ - up_.ready});
  upgrade_ = head.upgrade && upgrade.websocket;
  if (upgrade.changed && !ReplaceRequestHead(upgrade.head)) {
    view->counters->bad_requests++;
    HttpReply(400, "request head could not be rewritten without its Upgrade tokens");
    return;
  }
  if (upstream_fd_ >= 0 && decided_host_ == head.host &&
      RefuseUpstreamAddress(*upstream_addr_, origin_port_, policy, Own(), !view->audit()).empty()) {
    HttpStartForwarding();  // same host, still allowed: reuse the open upstream connection
    return;
  }
  CloseUpstream();
  ResolveAndConnect(head.host);
}

void Connection::HttpStartForwarding() {
  http_step_ = HttpStep::kForwarding;
  up_.ready = head_end_;
  response_ = std::make_unique<protocol::HttpResponseStream>();
  response_->ExpectResponseTo(method_);
  response_keep_alive_ = true;
  // A request without a body completes on an empty feed.
  HttpProcessClient();
}

void Connection::HttpProcessUpstream() {
  if (!response_ || response_done_) {
    // Between requests the upstream may only close (idle keep-alive timeout).
    if (down_.scanned < down_.end) {
      Close("upstream sent bytes nobody asked for");
      return;
    }
    if (down_.eof) {
      if (http_step_ == HttpStep::kForwarding && !request_done_) {
        // The upstream answered and left mid-request: the rest of this
        // request may not go anywhere else, so the connection ends here.
        Close("upstream closed before the request was complete");
        return;
      }
      CloseUpstream();
    }
    Pump();
    return;
  }
  // A head just completed may complete its (empty) message on an empty feed.
  bool after_head = false;
  while (down_.scanned < down_.end || after_head) {
    after_head = false;
    if (response_done_ || !response_) {
      Close("upstream sent bytes nobody asked for");
      return;
    }
    auto step = response_->Feed({down_.buf.get() + down_.scanned, down_.end - down_.scanned});
    down_.scanned += step.consumed;
    down_.ready = down_.scanned;
    if (step.event == protocol::HttpResponseStream::Event::kError) {
      CurrentView()->counters->upstream_errors++;
      Close("malformed response from upstream: " + response_->error());
      return;
    }
    if (step.event == protocol::HttpResponseStream::Event::kHeadComplete) {
      response_keep_alive_ = response_->keep_alive();
      after_head = true;
      continue;
    }
    if (step.event == protocol::HttpResponseStream::Event::kMessageComplete) {
      int status = response_->status();
      if (status == 101) {
        if (!upgrade_ || !request_done_) {
          Close("upstream switched protocols without a complete WebSocket upgrade request");
          return;
        }
        StartWebSocket();
        return;
      }
      if (status >= 100 && status < 200) continue;  // interim; the final response follows
      response_done_ = true;
      response_keep_alive_ = response_keep_alive_ && response_->keep_alive();
      if (!request_done_) {
        HttpDeliverResponseThenClose();
        return;
      }
      // An upgrade the upstream declined leaves the stream's state unclear: end it.
      if (upgrade_) request_keep_alive_ = false;
      if (request_done_) {
        HttpFinishTransaction();
        return;
      }
      continue;
    }
    break;  // kNeedMore
  }
  if (down_.eof && !response_done_ && response_) {
    auto step = response_->Finish();
    if (step.event == protocol::HttpResponseStream::Event::kMessageComplete) {
      response_done_ = true;
      response_keep_alive_ = false;
      if (request_done_) {
        HttpFinishTransaction();
      } else {
        HttpDeliverResponseThenClose();
      }
      return;
    }
    Close("upstream closed in the middle of a response");
    return;
  }
  Pump();
}

void Connection::HttpFinishTransaction() {
  if (down_.scanned < down_.end) {
    // Bytes after the response could pose as the next host's answer: the
    // response reaches the client, those bytes go nowhere, and both
    // connections end (nothing more of this client is read or forwarded).
    spdlog::debug("proxy: connection {}: upstream sent {} bytes after its response", id_,
                  down_.end - down_.scanned);
    CurrentView()->counters->upstream_errors++;
    down_.end = down_.scanned;
    HttpDeliverResponseThenClose();
    return;
  }
  if (!response_keep_alive_ || down_.eof) CloseUpstream();
  response_.reset();
  if (!request_keep_alive_ || up_.eof) {
    close_after_flush_ = true;
    Pump();
    return;
  }
  http_step_ = HttpStep::kReadingHead;
  request_done_ = response_done_ = false;
  // The next request may already be buffered (pipelining); an idle
  // keep-alive connection is the idle timer's.
  HttpProcessClient();
}

// The upstream sent its whole final response before the request body was
// complete. It may read the rest as a new request, one this proxy never
// decided: no more of it goes anywhere. The client gets the response, then
// the end of the connection.
//
// Also used when the upstream sent bytes after its response. The response read
// so far goes to the client; then the client's connection ends. The upstream
// is closed at once: nothing more is read from it.
void Connection::HttpDeliverResponseThenClose() {
  CloseUpstream();
  request_keep_alive_ = false;
  close_after_flush_ = true;
  Pump();
}

void Connection::HttpReply(int status, const std::string& reason) {
  if (!reply_.empty() || close_after_flush_) return;  // one answer per connection, then close
  const std::string policy_name = CurrentView()->policy->name();
  std::string body = "egressd: " + reason + "\n";
  reply_ = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n"
      "Connection: close\r\nX-Egressd-Policy: {}\r\n\r\n{}",
      status, StatusText(status), body.size(), policy_name, body);
  // Nothing else from this client is forwarded after a refusal.
  up_.ready = up_.start;
  CloseUpstream();
  phase_ = Phase::kHttp;
  http_step_ = HttpStep::kReadingHead;
  request_done_ = true;
  close_after_flush_ = true;
  Pump();
}

// The head being decided, [up_.ready, head_end_), becomes `head`; the bytes
// after it move up behind it. False (nothing changed) for a longer head.
bool Connection::ReplaceRequestHead(const std::string& head) {
  size_t from = up_.ready;
  if (head.size() > head_end_ - from) return false;
  size_t shift = head_end_ - from - head.size();
  memcpy(up_.buf.get() + from, head.data(), head.size());
  memmove(up_.buf.get() + head_end_ - shift, up_.buf.get() + head_end_, up_.end - head_end_);
  head_end_ -= shift;
  up_.scanned -= shift;
  up_.end -= shift;
  if (up_.recv_pending) up_.recv_shift += shift;
  return true;
}

void Connection::StartWebSocket() {
  mode_ = Mode::kTunnel;
  phase_ = Phase::kTunnel;
  bool deflate = protocol::NegotiatesPermessageDeflate(response_->headers());
  ws_from_client_.emplace(protocol::WebSocketRules{.from_client = true, .rsv1_allowed = deflate});
  ws_from_server_.emplace(protocol::WebSocketRules{.from_client = false, .rsv1_allowed = deflate});
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
    if (AuditOnly(decided_host_, why)) {
      // Audit mode: reported; the tunnel goes on unchecked.
      ws_from_client_.reset();
      ws_from_server_.reset();
      up_.ready = up_.scanned = up_.end;
      down_.ready = down_.scanned = down_.end;
      return true;
    }
    CloseWithEvent(why);  // none of these bytes goes
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
  decided_host_.clear();
  // Request bytes meant for this upstream never go to the next one.
  if (up_.send_pending) {
    up_discard_to_ = up_.ready;
    up_discard_pending_ = true;
  } else {
    up_.start = std::max(up_.start, up_.ready);
  }
  if (upstream_fd_ < 0) return;
  if (upstream_ops_ == 0) {
    close(upstream_fd_);
  } else {
    // Operations in flight: they finish with errors; the socket closes then.
    shutdown(upstream_fd_, SHUT_RDWR);
    retiring_fd_ = upstream_fd_;
  }
  upstream_fd_ = -1;
  down_.eof = false;
  down_.shut_written = false;
  up_.shut_written = false;
}

// ---- moving bytes ----------------------------------------------------------

void Connection::Pump() {
  if (phase_ == Phase::kClosing) return;
  bool upstream_live = upstream_fd_ >= 0 && (phase_ == Phase::kTunnel || phase_ == Phase::kHttp);

  // Compact a direction whose bytes were all sent.
  for (Direction* d : {&up_, &down_}) {
    if (d->buf && !d->recv_pending && !d->send_pending && d->start == d->end && d->start > 0) {
      if (d == &up_) head_end_ = 0;
      d->Reset();
    }
  }
  if (up_.buf && !up_.recv_pending && !up_.send_pending && up_.end == up_.cap && up_.start > 0) {
    size_t shift = up_.start;
    memmove(up_.buf.get(), up_.buf.get() + shift, up_.end - shift);
    up_.start = 0;
    up_.ready -= shift;
    up_.scanned -= shift;
    up_.end -= shift;
    head_end_ = head_end_ > shift ? head_end_ - shift : 0;
  }
  if (down_.buf && !down_.recv_pending && !down_.send_pending && down_.end == down_.cap &&
      down_.start > 0) {
    size_t shift = down_.start;
    memmove(down_.buf.get(), down_.buf.get() + shift, down_.end - shift);
    down_.start = 0;
    down_.ready -= shift;
    down_.scanned -= shift;
    down_.end -= shift;
  }

  // Sends.
  if (upstream_live && !up_.send_pending && up_.ready > up_.start) ArmSend(true);
  if (!down_.send_pending) {
    if (down_.ready > down_.start) {
      ArmSend(false);
    } else if (!reply_.empty()) {
      ArmSendReply();
    }
  }

  // Receives.
  if (phase_ != Phase::kDraining && !close_after_flush_ && !up_.recv_pending && !up_.eof &&
      up_.buf && up_.end < up_.cap)
    ArmRecv(true);
  if (phase_ == Phase::kDraining && !up_.recv_pending) ArmRecv(true);
  // In HTTP the upstream is read even while idle, to notice it closing.
  bool want_response = phase_ == Phase::kTunnel || (phase_ == Phase::kHttp && !close_after_flush_);
  if (upstream_live && want_response && !down_.recv_pending && !down_.eof && down_.end < down_.cap)
    ArmRecv(false);

  // Half-closes and the end of a tunnel.
  if (phase_ == Phase::kTunnel) {
    if (up_.eof && up_.start == up_.end && !up_.send_pending && !up_.shut_written &&
        upstream_fd_ >= 0) {
      shutdown(upstream_fd_, SHUT_WR);
      up_.shut_written = true;
    }
    if (down_.eof && down_.start == down_.end && !down_.send_pending && !down_.shut_written) {
      shutdown(client_fd_, SHUT_WR);
      down_.shut_written = true;
    }
    if (up_.shut_written && down_.shut_written) Close("done");
    return;
  }
  if (close_after_flush_ && phase_ != Phase::kDraining && !down_.send_pending &&
      down_.start == down_.ready && reply_.empty()) {
    // Our last byte is out. Half-close and read what the client still sends,
    // so closing does not reset the connection before it reads our answer.
    shutdown(client_fd_, SHUT_WR);
    CloseUpstream();
    phase_ = Phase::kDraining;
    up_.Reset();
    head_end_ = 0;
    ArmDeadline(std::chrono::duration_cast<std::chrono::milliseconds>(kDrainTime));
    if (!up_.recv_pending) ArmRecv(true);
  }
}

void Connection::ArmRecv(bool client) {
  Direction& d = client ? up_ : down_;
  if (!d.buf) return;
  if (phase_ == Phase::kDraining) d.Reset();  // drained bytes are discarded
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_recv(sqe, client ? client_fd_ : upstream_fd_, d.buf.get() + d.end, d.cap - d.end,
                     0);
  io_uring_sqe_set_data64(sqe,
                          EncodeOp(this, client ? OpKind::kClientRecv : OpKind::kUpstreamRecv));
  d.recv_pending = true;
  pending_++;
  if (!client) upstream_ops_++;
}

void Connection::ArmSend(bool to_upstream) {
  Direction& d = to_upstream ? up_ : down_;
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_send(sqe, to_upstream ? upstream_fd_ : client_fd_, d.buf.get() + d.start,
                     d.ready - d.start, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(
      sqe, EncodeOp(this, to_upstream ? OpKind::kUpstreamSend : OpKind::kClientSend));
  d.send_pending = true;
  pending_++;
  if (to_upstream) upstream_ops_++;
}

void Connection::ArmSendReply() {
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_send(sqe, client_fd_, reply_.data(), reply_.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kClientSend));
  down_.send_pending = true;
  sending_reply_ = true;
  pending_++;
}

void Connection::OnRecv(bool client, int res) {
  Direction& d = client ? up_ : down_;
  d.recv_pending = false;
  if (d.recv_shift > 0) {
    if (res > 0) memmove(d.buf.get() + d.end, d.buf.get() + d.end + d.recv_shift, res);
    d.recv_shift = 0;
  }
  if (res > 0) last_byte_ = std::chrono::steady_clock::now();
  if (!client && RetireDone()) return;
  if (phase_ == Phase::kClosing) return;
  if (phase_ == Phase::kDraining) {
    if (res <= 0) {
      Close("drained");
    } else {
      ArmRecv(true);
    }
    return;
  }
  if (res < 0) {
    Close(fmt::format("{} recv: {}", client ? "client" : "upstream", strerror(-res)));
    return;
  }
  if (res == 0) {
    d.eof = true;
  } else {
    d.end += static_cast<size_t>(res);
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
        if (close_after_flush_) {
          Pump();  // answered already: what the client sends now is ignored
          return;
        }
        if (d.eof && http_step_ == HttpStep::kReadingHead && up_.scanned == up_.end) {
          Close("client done");
          return;
        }
        if (d.eof && http_step_ == HttpStep::kForwarding && !request_done_ &&
            up_.scanned == up_.end) {
          Close("client closed in the middle of a request");
          return;
        }
        HttpProcessClient();
      } else {
        HttpProcessUpstream();
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
  if (to_upstream && RetireDone()) {
    if (up_discard_pending_) {
      up_.start = std::max(up_.start, up_discard_to_);
      up_discard_pending_ = false;
    }
    if (phase_ != Phase::kClosing) Pump();
    return;
  }
  if (!to_upstream && sending_reply_ && (phase_ == Phase::kClosing || res < 0))
    sending_reply_ = false;
  if (phase_ == Phase::kClosing) return;
  if (res < 0) {
    Close(fmt::format("send to {}: {}", to_upstream ? "upstream" : "client", strerror(-res)));
    return;
  }
  if (!to_upstream && sending_reply_) {
    sending_reply_ = false;
    reply_.erase(0, static_cast<size_t>(res));
    Pump();
    return;
  }
  d.start += static_cast<size_t>(res);
  if (sandbox_) {
    if (to_upstream) {
      sandbox_->counters->bytes_up += static_cast<uint64_t>(res);
    } else {
      sandbox_->counters->bytes_down += static_cast<uint64_t>(res);
    }
  }
  // A refused request must not leave: if the head being decided is still in
  // the buffer, the send window never reaches it (ready stops before it).
  Pump();
  if (phase_ == Phase::kHttp && to_upstream) HttpProcessClient();
}

// Completions of an upstream socket that CloseUpstream retired are dropped;
// the last one closes it and starts a connect that was waiting for it.
bool Connection::RetireDone() {
  upstream_ops_--;
  if (retiring_fd_ < 0) return false;
  if (upstream_ops_ == 0) {
    close(retiring_fd_);
    retiring_fd_ = -1;
    if (connect_waiting_ && phase_ != Phase::kClosing) {
      policy::IpAddress addr = *connect_waiting_;
      connect_waiting_.reset();
      ConnectTo(addr);
    }
  }
  return true;
}

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
  bool own_deadline =
      phase_ == Phase::kResolving || phase_ == Phase::kConnecting || phase_ == Phase::kDraining;
  if (quiet < limit || own_deadline) {
    ArmIdleTimer(own_deadline ? limit : limit - quiet);
    return;
  }
  CurrentView()->counters->idle_timeouts++;
  CloseWithEvent(fmt::format(
      "idle timeout: no byte either way for {} s",
      std::chrono::duration_cast<std::chrono::seconds>(worker_.ctx().options.idle_timeout)
          .count()));
}

void Connection::Deny(const std::string& why) {
  if (sandbox_) sandbox_->counters->connections_denied++;
  CloseWithEvent(why);
}

void Connection::CloseWithEvent(const std::string& why) {
  RecordDeny(decided_host_, why);
  Close(why);
}

void Connection::DenyOrPass(const std::string& why) {
  if (AuditOnly(decided_host_, why)) {
    PassToOriginal("audit mode");
    return;
  }
  Deny(why);
}

bool Connection::AuditOnly(const std::string& host, const std::string& why) {
  auto view = CurrentView();
  if (!view || !view->audit()) return false;
  spdlog::info("audit: sandbox={} instance={} layer=proxy host={} dst={}:{} not enforced: \"{}\"",
               view->id, view->instance, host.empty() ? "-" : host, origin_addr_.ToString(),
               origin_port_, why);
  RecordDeny(host, why, /*enforced=*/false);
  return true;
}

OwnListeners Connection::Own() const {
  return {worker_.ctx().options.proxy_port, worker_.ctx().sandboxes,
          /*refuse_loopback=*/sandbox_ && sandbox_->own_netns, worker_.ctx().host_addresses};
}

void Connection::RecordDeny(const std::string& host, const std::string& reason, bool enforced) {
  if (!sandbox_) return;
  if (enforced) {
    spdlog::info("deny: sandbox={} instance={} layer=proxy host={} dst={}:{} reason=\"{}\"",
                 sandbox_->id, sandbox_->instance, host.empty() ? "-" : host,
                 origin_addr_.ToString(), origin_port_, reason);
  }
  audit::EventLog* events = worker_.ctx().events;
  if (!events) return;
  audit::AuditEvent e;
  e.instance = sandbox_->instance;
  e.cgroup = sandbox_->cgroup;
  e.layer = "proxy";
  e.address = origin_addr_.ToString();
  e.port = origin_port_;
  e.host = host;
  e.reason = reason;
  e.enforced = enforced;
  events->Append(std::move(e));
}

void Connection::Close(const std::string& why) {
  if (phase_ == Phase::kClosing) return;
  spdlog::debug("proxy: connection {} closed: {}", id_, why);
  phase_ = Phase::kClosing;
  CancelDeadline();
  if (idle_armed_) {
    idle_armed_ = false;
    io_uring_sqe* sqe = worker_.GetSqe();
    io_uring_prep_timeout_remove(sqe, EncodeOp(this, OpKind::kIdleTimer), 0);
    io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kCancel));
    pending_++;
  }
  for (int fd : {client_fd_, upstream_fd_, retiring_fd_}) {
    if (fd < 0) continue;
    io_uring_sqe* sqe = worker_.GetSqe();
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kCancel));
    pending_++;
  }
  MaybeFinish();
}

void Connection::MaybeFinish() {
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
        if (phase_ == Phase::kClassifying) {
          DenyOrPass("no TLS ClientHello or HTTP request in time");
        } else if (phase_ == Phase::kHttp && http_step_ == HttpStep::kReadingHead) {
          Close("no complete request head in time");
        } else if (phase_ == Phase::kDraining) {
          Close("drain time over");
        }
      }
      break;
    case OpKind::kIdleTimer:
      OnIdleTimer(res);
      break;
    case OpKind::kConnectTimeout:
    case OpKind::kCancel:
    default:
      break;
  }
  MaybeFinish();
}

}  // namespace egressd::proxy
