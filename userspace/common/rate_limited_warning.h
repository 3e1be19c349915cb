// A warning that traffic from a sandbox can trigger at will is logged at most
// once per period, whichever thread asks: the case itself is counted where it
// happens (status), the log only says that it happens.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace egressd {

class RateLimitedWarning {
 public:
  explicit RateLimitedWarning(std::chrono::milliseconds period) : period_ms_(period.count()) {}

  // True for the one caller that should log now.
  bool Due() {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count();
    int64_t last = last_ms_.load(std::memory_order_relaxed);
    return (last == kNever || now - last >= period_ms_) &&
           last_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed);
  }
  int64_t period_seconds() const { return period_ms_ / 1000; }

 private:
  static constexpr int64_t kNever = INT64_MIN;
  const int64_t period_ms_;
  std::atomic<int64_t> last_ms_{kNever};
};

}  // namespace egressd
