#include "userspace/metrics/latency_histogram.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace egressd::metrics {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(LatencyHistogram, EachObservationGoesToTheFirstBucketWhoseBoundHoldsIt) {
  LatencyHistogram h;
  h.Observe(microseconds(100));             // <= 0.5 ms: bucket 0
  h.Observe(microseconds(500));             // exactly 0.5 ms: still bucket 0 (le)
  h.Observe(microseconds(501));             // bucket 1 (<= 1 ms)
  h.Observe(milliseconds(30));              // <= 50 ms
  h.Observe(seconds(301));                  // above every bound: +Inf
  h.Observe(std::chrono::nanoseconds(-5));  // a clock oddity counts as 0
  auto s = h.Read();
  EXPECT_EQ(s.count, 6u);
  EXPECT_EQ(s.counts[0], 3u);
  EXPECT_EQ(s.counts[1], 1u);
  EXPECT_EQ(s.counts[LatencyHistogram::BucketOf(30'000'000)], 1u);
  EXPECT_EQ(LatencyHistogram::kBoundsSeconds[LatencyHistogram::BucketOf(30'000'000)], 0.05);
  EXPECT_EQ(s.counts[LatencyHistogram::kBuckets - 1], 1u);
  EXPECT_NEAR(s.sum_seconds, 0.0001 + 0.0005 + 0.000501 + 0.03 + 301, 1e-9);
}

TEST(LatencyHistogram, BoundsAreIncreasing) {
  for (size_t i = 1; i < LatencyHistogram::kBoundsSeconds.size(); ++i)
    EXPECT_LT(LatencyHistogram::kBoundsSeconds[i - 1], LatencyHistogram::kBoundsSeconds[i]);
}

TEST(LatencyHistogram, ConcurrentObservationsAreAllCounted) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.Observe(milliseconds(i % 200));
    });
  for (auto& t : threads) t.join();
  auto s = h.Read();
  EXPECT_EQ(s.count, 40000u);
  uint64_t in_buckets = 0;
  for (uint64_t c : s.counts) in_buckets += c;
  EXPECT_EQ(in_buckets, 40000u);
}

TEST(Stopwatch, MeasuresFromStart) {
  Stopwatch w;
  w.Start();
  std::this_thread::sleep_for(milliseconds(2));
  EXPECT_GE(w.Elapsed(), milliseconds(2));
  EXPECT_LT(w.Elapsed(), seconds(5));
}

}  // namespace
}  // namespace egressd::metrics
