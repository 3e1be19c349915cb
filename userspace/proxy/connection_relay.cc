// Moving bytes, following liburing's proxy example: at most one receive
// and one send in flight per direction, received into and sent from the
// direction's buffer (a TLS side has buffers of its own and decrypts into,
// encrypts from, the plaintext direction). New bytes go to the tunnel or the
// HTTP session (Deliver); Pump arms what the buffers now allow, and ends a
// tunnel or a drained connection.
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "userspace/proxy/connection.h"
#include "userspace/proxy/worker.h"

namespace egressd::proxy {
namespace {

// After our last byte: how long what the client still sends is read (and
// dropped) before the close, so the close does not reset our answer.
constexpr auto kDrainTime = std::chrono::seconds(2);

}  // namespace

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
      // The last of what a connection that closes sends: close_notify goes
      // in the same send (one wake-up of the client, not two).
      if (close_after_flush_ && phase_ != Phase::kDraining && !down_.HasUnsent() && reply_.empty())
        client_tls_->ShutdownAndFlushed();
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
    // TLS with the sandbox failed (OnTlsFailure): its alert out, the tunnel ends.
    if (close_after_flush_) {
      if (!down_.send_pending && ReadyToShutWrite(true)) Close("TLS with the sandbox failed");
      return;
    }
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
  if (res > 0) {
    last_byte_ = std::chrono::steady_clock::now();
    if (!client) upstream_active_ = last_byte_;
  }
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
  if (res > 0) {
    last_byte_ = std::chrono::steady_clock::now();
    if (to_upstream) upstream_active_ = last_byte_;
  }
  if (to_upstream && up_discard_pending_) {
    // This send was a retired upstream's (CloseUpstream): what it did not
    // take is dropped now, before RetireDone may start the connect that was
    // waiting, which can take a pooled upstream and send at once: the rest
    // of a request must never go ahead of the next one's head.
    up_.DiscardUpTo(up_discard_to_);
    up_discard_pending_ = false;
  }
  if (to_upstream && RetireDone(res)) {
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

}  // namespace egressd::proxy
