// Idle connections hold no relay buffer. A keep-alive connection between
// requests, or a tunnel, that has been quiet for kParkAfter has its pending
// receives cancelled; once cancelled, each direction gives its buffer back
// to the worker's pool (unmapped, so its pages leave the process) and a poll
// waits for its source to become readable. The first byte (or the end, or
// an error) takes a buffer again and the receive is armed as before. What
// an idle connection costs is then its own state; the data path of a busy
// connection is unchanged (the check rides on the idle timer).
//
// Intercepted connections park the same way once both TLS sides are quiet
// (nothing to decrypt, send or retry): a parked side also gives back its
// ciphertext input queue and OpenSSL's record buffers, which the next
// receive takes again. What stays is the two SSL objects' state.
#include <poll.h>
#include <spdlog/spdlog.h>

#include <cerrno>

#include "userspace/proxy/connection.h"
#include "userspace/proxy/resource_shortage.h"
#include "userspace/proxy/worker.h"

namespace egressd::proxy {

bool Connection::TakeBuffer(Direction& d) {
  if (d.Allocate(worker_.buffers())) return true;
  worker_.ctx().counters->buffer_errors++;
  WarnResourceShortage(*worker_.ctx().counters,
                       std::string("no memory for a relay buffer: ") + strerror(errno));
  return false;
}

void Connection::FailForResources(const std::string& why) {
  CurrentView()->counters->upstream_errors++;
  if (mode_ == Mode::kHttp) {
    session_->Reply({502, ReplyReason::kNoResources, why, "", 0});
  } else {
    Close(why);
  }
}

bool Connection::CanPark() const {
  bool between_requests =
      phase_ == Phase::kHttp && session_ && session_->reading_head() && !session_->finished();
  if (phase_ != Phase::kTunnel && !between_requests) return false;
  if (retiring_fd_.valid() || up_discard_pending_ || close_after_flush_ || sending_reply_ ||
      !reply_.empty())
    return false;
  for (const TlsSide* t : {client_tls_.get(), upstream_tls_.get()}) {
    if (t && !t->Quiet()) return false;
  }
  for (const Direction* d : {&up_, &down_}) {
    if (!d->Drained() || d->send_pending) return false;
  }
  return true;
}

void Connection::MaybePark() {
  if (!CanPark()) return;
  for (bool client : {true, false}) {
    Direction& d = client ? up_ : down_;
    if (!d.recv_pending || d.parking != Parking::kNo) continue;
    io_uring_sqe* sqe = worker_.GetSqe();
    io_uring_prep_cancel64(sqe,
                           EncodeOp(this, client ? OpKind::kClientRecv : OpKind::kUpstreamRecv), 0);
    io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kCancel));
    pending_++;
    d.parking = Parking::kCancelling;
  }
}

void Connection::Park(bool client) {
  Direction& d = client ? up_ : down_;
  if (!CanPark()) {
    Pump();  // busy again since the cancel was asked: receive as before
    return;
  }
  d.ReleaseBuffer();
  if (TlsSide* t = Tls(client)) t->ReleaseIdleMemory();
  if (session_) session_->ReleaseIdleMemory();
  io_uring_sqe* sqe = worker_.GetSqe();
  io_uring_prep_poll_add(sqe, client ? client_fd_.get() : upstream_fd_.get(), POLLIN);
  io_uring_sqe_set_data64(
      sqe, EncodeOp(this, client ? OpKind::kClientReadable : OpKind::kUpstreamReadable));
  d.parking = Parking::kParked;
  pending_++;
  if (!client) upstream_ops_++;
  CountParked();
}

void Connection::OnReadable(bool client, int res) {
  Direction& d = client ? up_ : down_;
  d.parking = Parking::kNo;
  CountParked();
  if (!client && RetireDone(res)) return;  // the upstream was closed meanwhile
  if (phase_ == Phase::kClosing) return;
  // Readable, closed or failed: the receive armed now tells which.
  if (!TakeBuffer(d)) {
    Close("no memory for the connection's relay buffer");
    return;
  }
  if (idle_armed_) {
    // The idle timer was set for the rest of --idle-timeout while parked:
    // bring it forward, so this side parks again once quiet (the other may
    // still be parked: an intercepted upstream's late TLS message wakes only
    // its own side).
    idle_after_ = {.tv_sec = kParkAfter.count(), .tv_nsec = 0};
    io_uring_sqe* sqe = worker_.GetSqe();
    io_uring_prep_timeout_update(sqe, &idle_after_, EncodeOp(this, OpKind::kIdleTimer), 0);
    io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kCancel));
    pending_++;
  }
  Pump();
}

void Connection::CountParked() {
  bool parked = phase_ != Phase::kClosing &&
                (up_.parking == Parking::kParked || down_.parking == Parking::kParked);
  if (parked == parked_counted_) return;
  parked_counted_ = parked;
  if (parked) {
    worker_.ctx().counters->parked_connections++;
    worker_.NoteParked();
  } else {
    worker_.ctx().counters->parked_connections--;
  }
}

}  // namespace egressd::proxy
