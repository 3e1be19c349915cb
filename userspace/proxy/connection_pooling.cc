// Upstream connections outlive their client's. When a client connection
// ends (or its next request goes to another host) and the last exchange
// with its upstream ended cleanly, the upstream goes to the worker's
// UpstreamPool instead of being closed; the next request of the same
// sandbox for the same host, port and address takes it: no connect, and
// for an intercepted connection no TLS handshake with the upstream.
//
// The upstream always has a receive posted between requests (to notice it
// closing). It is cancelled first; only a cancellation that completes with
// nothing received (-ECANCELED) lets the connection into the pool
// (RetireDone). Requests are decided before the pool is asked (policy,
// address choice): a pooled connection never takes a request elsewhere.
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <utility>

#include "userspace/proxy/connection.h"
#include "userspace/proxy/upstream_pool.h"
#include "userspace/proxy/worker.h"

namespace egressd::proxy {

bool Connection::UpstreamReusable() const {
  if (!worker_.upstream_pool() || !upstream_fd_.valid() || !upstream_addr_ ||
      mode_ != Mode::kHttp || !session_ || !session_->upstream_reusable() ||
      upstream_bound_to_client_ || decided_host_.empty() || !sandbox_)
    return false;
  // Idle too long already: the origin's keep-alive timeout may be near.
  if (std::chrono::steady_clock::now() - upstream_active_ > UpstreamPool::kMaxIdle) return false;
  // Nothing of a request in flight or waiting to be discarded, nothing of
  // the upstream unread, no poll of a parked connection.
  if (retiring_fd_.valid() || up_.send_pending || up_discard_pending_ || down_.eof ||
      down_.scanned != down_.end || up_.parking != Parking::kNo || down_.parking != Parking::kNo)
    return false;
  if (upstream_ops_ != (down_.recv_pending ? 1 : 0)) return false;
  // An intercepted upstream: its TLS side is between records, both ways.
  if (client_tls_ && !upstream_tls_) return false;
  if (upstream_tls_) {
    const tls::TlsStream& s = upstream_tls_->stream();
    // (SSL_has_pending: part of a record read ahead and not processed yet.)
    if (!s.handshake_done() || s.failed() || s.peer_closed() || upstream_tls_->HasInput() ||
        s.pending_ciphertext_bytes() != 0 || SSL_has_pending(s.native_handle()))
      return false;
  }
  return true;
}

std::string Connection::PoolKey(const policy::IpAddress& addr) const {
  return UpstreamPool::Key(sandbox_->generation, client_tls_ != nullptr, decided_host_,
                           origin_port_, addr);
}

void Connection::RetireToPool(std::string key) {
  retiring_pool_key_ = std::move(key);
  retiring_fd_ = std::move(upstream_fd_);
  retiring_tls_ = std::move(upstream_tls_);
  if (upstream_ops_ == 0) {
    PutRetiredInPool();
    return;
  }
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_cancel64(sqe, EncodeOp(this, OpKind::kUpstreamRecv), 0);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kCancel));
  pending_++;
}

void Connection::PutRetiredInPool() {
  if (UpstreamPool* pool = worker_.upstream_pool()) {
    // Idle since its last byte, not since now: kMaxIdle bounds the whole wait.
    pool->Put(retiring_pool_key_, IdleUpstream{.fd = std::move(retiring_fd_),
                                               .tls = std::move(retiring_tls_),
                                               .since = upstream_active_});
  }
  retiring_pool_key_.clear();
  retiring_fd_.Reset();  // when the pool was full
  retiring_tls_.reset();
}

bool Connection::TakePooledUpstream(const policy::IpAddress& addr) {
  UpstreamPool* pool = worker_.upstream_pool();
  if (std::exchange(skip_pool_, false) || !pool || mode_ != Mode::kHttp || !sandbox_ ||
      decided_host_.empty())
    return false;
  auto idle = pool->Take(PoolKey(addr), std::chrono::steady_clock::now());
  if (!idle) return false;
  upstream_fd_ = std::move(idle->fd);
  upstream_tls_ = std::move(idle->tls);
  upstream_addr_ = addr;
  upstream_from_pool_ = true;
  worker_.ctx().counters->upstream_reused++;
  OnUpstreamReady();
  return true;
}

// A pooled upstream can time out just as a request is sent on it; the
// session decides whether the request may go again (HttpSession::
// ResendOnNewUpstream), this makes the new connection: same host, same
// address (both decided for this request already), never from the pool.
bool Connection::ReplaceUpstream() {
  if (!upstream_from_pool_ || !upstream_addr_ || mode_ != Mode::kHttp || phase_ != Phase::kHttp ||
      decided_host_.empty())
    return false;
  const std::string host = decided_host_;
  const policy::IpAddress addr = *upstream_addr_;
  spdlog::debug("proxy: {}: pooled upstream {} for {} closed before its response; sent again",
                sandbox_->instance, addr.ToString(), host);
  CloseUpstream();  // not reusable (a request is in flight): closed
  decided_host_ = host;
  skip_pool_ = true;
  worker_.ctx().counters->requests_resent++;
  ConnectTo(addr);
  return true;
}

}  // namespace egressd::proxy
