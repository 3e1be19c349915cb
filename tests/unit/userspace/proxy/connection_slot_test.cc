#include "userspace/proxy/connection_slot.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace egressd::proxy {
namespace {

TEST(ConnectionSlotTest, AtMostMaxAreHeldAndAFreedSlotIsTakenAgain) {
  auto counters = std::make_shared<sandbox::ProxyCounters>();
  std::vector<ConnectionSlot> held;
  for (int i = 0; i < 3; ++i) {
    auto slot = ConnectionSlot::Take(counters, 3);
    ASSERT_TRUE(slot.has_value());
    held.push_back(std::move(*slot));
  }
  EXPECT_FALSE(ConnectionSlot::Take(counters, 3).has_value());
  EXPECT_FALSE(ConnectionSlot::Take(counters, 3).has_value());
  EXPECT_EQ(counters->open_connections, 3u);
  EXPECT_EQ(counters->connections_refused_limit, 2u);
  held.pop_back();  // a connection freed: its slot is free again
  EXPECT_EQ(counters->open_connections, 2u);
  EXPECT_TRUE(ConnectionSlot::Take(counters, 3).has_value());  // taken and freed at once
  held.clear();
  EXPECT_EQ(counters->open_connections, 0u);
}

TEST(ConnectionSlotTest, ConcurrentTakersNeverHoldMoreThanMax) {
  auto counters = std::make_shared<sandbox::ProxyCounters>();
  constexpr uint64_t kMax = 3;
  std::atomic<uint64_t> holding{0}, peak{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        auto slot = ConnectionSlot::Take(counters, kMax);
        if (!slot) {
          refused++;
          continue;
        }
        uint64_t now = ++holding;
        for (uint64_t seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
        }
        holding--;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), kMax);
  EXPECT_EQ(counters->open_connections, 0u);
  EXPECT_EQ(counters->connections_refused_limit, refused.load());
}

TEST(ConnectionSlotTest, OneLimitEventASecond) {
  sandbox::ProxyCounters counters;
  EXPECT_TRUE(LimitEventDue(counters));
  EXPECT_FALSE(LimitEventDue(counters));
  EXPECT_FALSE(LimitEventDue(counters));
}

}  // namespace
}  // namespace egressd::proxy
