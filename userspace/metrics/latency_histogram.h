// Durations the data path records for the metrics (`--metrics-listen`):
// fixed buckets of relaxed atomics, two fetch_adds per observation (its
// bucket and the sum), no lock, no allocation, no clock read of its own
// beyond the caller's Stopwatch. A scrape reads them (metrics_families.cc)
// and makes the buckets cumulative, as Prometheus wants them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace egressd::metrics {
namespace detail {

template <size_t N>
constexpr std::array<int64_t, N> ToNanoseconds(const std::array<double, N>& seconds) {
  std::array<int64_t, N> ns{};
  for (size_t i = 0; i < N; ++i) ns[i] = static_cast<int64_t>(seconds[i] * 1e9 + 0.5);
  return ns;
}

}  // namespace detail

class LatencyHistogram {
 public:
  // Upper bounds of the buckets, in seconds: from loopback connects (well
  // under a millisecond) to requests that wait for --response-timeout (300 s).
  static constexpr std::array<double, 18> kBoundsSeconds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
      0.5,    1,     2.5,    5,     10,   30,    60,   120, 300};
  // One more bucket than bounds: the last holds what is above every bound (+Inf).
  static constexpr size_t kBuckets = kBoundsSeconds.size() + 1;

  // Not cumulative: counts[i] is the observations in (bound[i-1], bound[i]].
  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};
    uint64_t count = 0;  // the sum of counts
    double sum_seconds = 0;
  };

  void Observe(std::chrono::nanoseconds elapsed) {
    int64_t ns = elapsed.count() < 0 ? 0 : elapsed.count();
    buckets_[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
  }

  // The figures now; a scrape that races an observation may see its bucket
  // without its sum, never a count that goes down.
  Snapshot Read() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) {
      s.counts[i] = buckets_[i].load(std::memory_order_relaxed);
      s.count += s.counts[i];
    }
    s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return s;
  }

  static size_t BucketOf(int64_t ns) {
    size_t i = 0;
    while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
    return i;
  }

 private:
  static constexpr std::array<int64_t, kBoundsSeconds.size()> kBoundsNs =
      detail::ToNanoseconds(kBoundsSeconds);

  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// When something began, for a LatencyHistogram: one clock read each end.
class Stopwatch {
 public:
  void Start() { start_ = std::chrono::steady_clock::now(); }
  std::chrono::nanoseconds Elapsed() const { return std::chrono::steady_clock::now() - start_; }

 private:
  std::chrono::steady_clock::time_point start_{};
};

}  // namespace egressd::metrics
