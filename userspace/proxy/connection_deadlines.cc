// Time limits: one deadline per connection (classification, a request
// head, a response's first byte, the upstream TLS handshake, draining),
// each an io_uring timeout, and the idle timer that any byte pushes back.
#include <spdlog/spdlog.h>

#include <chrono>

#include "userspace/proxy/connection.h"
#include "userspace/proxy/uring_time.h"
#include "userspace/proxy/worker.h"

namespace egressd::proxy {

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
  idle_after_ = ToTimespec(after);
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
    // A side not parked yet: look again when it has been quiet long enough.
    if (!Parked() || SideAwake())
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

void Connection::ArmResponseDeadline() {
  ArmDeadline(worker_.ctx().options.response_timeout);
}

void Connection::ArmHeadDeadline() {
  if (!deadline_armed_) ArmDeadline(worker_.ctx().options.head_timeout);
}

}  // namespace egressd::proxy
