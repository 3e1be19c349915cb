// The proxy's access log: with --log-level debug, one line per proxied
// connection (when it closes) and one per HTTP request (when it ends), each
// with the instance, host, upstream address, decision, bytes and duration:
//
//   access: connection 7 instance=job-42 mode=tunnel host=github.com
//     address=140.82.121.4:443 decision=allowed bytes_up=517 bytes_down=4211
//     duration_ms=83 (done)
//   access: request instance=job-42 method=GET host=pypi.org
//     address=151.101.0.223:443 decision=denied status=403 bytes_up=78
//     bytes_down=0 duration_ms=0
//
// Nothing is formatted unless debug is on. Values are the ones egressd
// decided on (a Host header, an SNI), never headers or bodies.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace egressd::proxy {

// What happened to a connection or request, as the policy saw it.
enum class AccessDecision : uint8_t {
  kUndecided,  // ended before anything was decided (client left, malformed)
  kAllowed,    // went upstream
  kDenied,     // refused: by the policy, or by a rule that holds in every mode
  kAudit,      // audit mode: would have been denied, let through
  kFailed,     // allowed, but egressd answered itself: upstream unreachable, malformed
};

bool AccessLogEnabled();

// Bytes and time of one connection or one request, and its decision.
class AccessTally {
 public:
  AccessTally() : start_(std::chrono::steady_clock::now()) {}
  void Restart() { *this = AccessTally(); }
  void BytesUp(uint64_t n) { bytes_up_ += n; }
  void BytesDown(uint64_t n) { bytes_down_ += n; }
  // A deny or an audit-mode let-through wins over what was decided before; an
  // allow or a refusal fills in only what nothing decided yet.
  void Allowed() { Fill(AccessDecision::kAllowed); }
  void Refused() { Fill(AccessDecision::kDenied); }
  void Failed() { Fill(AccessDecision::kFailed); }
  void Denied() { decision_ = AccessDecision::kDenied; }
  void LetThrough() {
    if (decision_ != AccessDecision::kDenied) decision_ = AccessDecision::kAudit;
  }
  AccessDecision decision() const { return decision_; }
  uint64_t bytes_up() const { return bytes_up_; }
  uint64_t bytes_down() const { return bytes_down_; }
  std::chrono::milliseconds elapsed() const;

 private:
  void Fill(AccessDecision d) {
    if (decision_ == AccessDecision::kUndecided) decision_ = d;
  }
  std::chrono::steady_clock::time_point start_;
  uint64_t bytes_up_ = 0;
  uint64_t bytes_down_ = 0;
  AccessDecision decision_ = AccessDecision::kUndecided;
};

struct AccessSubject {
  std::string_view instance;
  std::string_view host;     // "" when none was named
  std::string_view address;  // "ip:port" of the upstream, or the original destination
};

// mode: "tunnel", "http", "intercepted" or "none"; why: the reason it closed.
// `decision`: the tally's, or for HTTP its last request's.
void LogConnection(uint64_t id, const AccessSubject& subject, std::string_view mode,
                   AccessDecision decision, const AccessTally& tally, std::string_view why);
// status: the response's (or egressd's own reply's); 0 when there was none.
void LogRequest(const AccessSubject& subject, std::string_view method, int status,
                const AccessTally& tally);

}  // namespace egressd::proxy
