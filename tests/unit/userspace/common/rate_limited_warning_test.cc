#include "userspace/common/rate_limited_warning.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace egressd {
namespace {

TEST(RateLimitedWarning, FirstCallIsDueThenNotWithinThePeriod) {
  RateLimitedWarning warning(std::chrono::seconds(60));
  EXPECT_TRUE(warning.Due());
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(warning.Due());
  EXPECT_EQ(warning.period_seconds(), 60);
}

TEST(RateLimitedWarning, DueAgainOnceThePeriodIsOver) {
  RateLimitedWarning warning(std::chrono::milliseconds(0));
  EXPECT_TRUE(warning.Due());
  EXPECT_TRUE(warning.Due());  // a zero period never holds one back
}

TEST(RateLimitedWarning, OneCallerAmongManyThreads) {
  RateLimitedWarning warning(std::chrono::seconds(60));
  std::atomic<int> due{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i)
        if (warning.Due()) due++;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(due.load(), 1);
}

}  // namespace
}  // namespace egressd
