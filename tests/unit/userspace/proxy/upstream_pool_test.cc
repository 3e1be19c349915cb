#include "userspace/proxy/upstream_pool.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace egressd::proxy {
namespace {

using Clock = std::chrono::steady_clock;

// One end of a socket pair stands for an idle upstream; the other is its origin.
struct Pair {
  UniqueFd ours;
  UniqueFd origin;
};

Pair MakePair() {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

policy::IpAddress Loopback() {
  return *policy::IpAddress::Parse("127.0.0.1");
}

TEST(UpstreamPoolTest, KeysSeparateSandboxesSchemesHostsPortsAndAddresses) {
  const auto a = Loopback();
  const auto key = UpstreamPool::Key(1, true, "a.test", 443, a);
  EXPECT_NE(key, UpstreamPool::Key(2, true, "a.test", 443, a));
  EXPECT_NE(key, UpstreamPool::Key(1, false, "a.test", 443, a));
  EXPECT_NE(key, UpstreamPool::Key(1, true, "b.test", 443, a));
  EXPECT_NE(key, UpstreamPool::Key(1, true, "a.test", 8443, a));
  EXPECT_NE(key, UpstreamPool::Key(1, true, "a.test", 443, *policy::IpAddress::Parse("127.0.0.2")));
}

TEST(UpstreamPoolTest, TakesTheNewestLiveEntryOfItsKeyOnly) {
  std::atomic<int64_t> gauge{0};
  UpstreamPool pool(&gauge);
  const auto now = Clock::now();
  Pair older = MakePair(), newer = MakePair(), other = MakePair();
  const int newer_fd = newer.ours.get();
  ASSERT_TRUE(pool.Put("k", {std::move(older.ours), nullptr, now}));
  ASSERT_TRUE(pool.Put("k", {std::move(newer.ours), nullptr, now}));
  ASSERT_TRUE(pool.Put("other", {std::move(other.ours), nullptr, now}));
  EXPECT_EQ(gauge.load(), 3);
  EXPECT_FALSE(pool.Take("missing", now));
  auto got = pool.Take("k", now);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->fd.get(), newer_fd);
  EXPECT_EQ(pool.size(), 2u);
  EXPECT_EQ(gauge.load(), 2);
}

TEST(UpstreamPoolTest, DropsEntriesWhoseOriginClosedOrSentBytes) {
  UpstreamPool pool(nullptr);
  const auto now = Clock::now();
  Pair live = MakePair(), closed = MakePair(), chatty = MakePair();
  const int live_fd = live.ours.get();
  ASSERT_TRUE(pool.Put("k", {std::move(live.ours), nullptr, now}));
  ASSERT_TRUE(pool.Put("k", {std::move(closed.ours), nullptr, now}));
  ASSERT_TRUE(pool.Put("k", {std::move(chatty.ours), nullptr, now}));
  closed.origin.Reset();
  ASSERT_EQ(write(chatty.origin.get(), "x", 1), 1);  // bytes nobody asked for
  auto got = pool.Take("k", now);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->fd.get(), live_fd);
  EXPECT_EQ(pool.size(), 0u);
}

TEST(UpstreamPoolTest, ExpiresWhatWasIdleTooLongAndNeverHandsItOut) {
  std::atomic<int64_t> gauge{0};
  UpstreamPool pool(&gauge);
  const auto t0 = Clock::now();
  Pair old = MakePair(), fresh = MakePair();
  const int fresh_fd = fresh.ours.get();
  ASSERT_TRUE(pool.Put("k", {std::move(old.ours), nullptr, t0}));
  ASSERT_TRUE(pool.Put("k", {std::move(fresh.ours), nullptr, t0 + UpstreamPool::kMaxIdle}));
  const auto later = t0 + UpstreamPool::kMaxIdle + std::chrono::milliseconds(1);
  pool.Expire(later);
  EXPECT_EQ(pool.size(), 1u);
  EXPECT_EQ(gauge.load(), 1);
  auto got = pool.Take("k", later);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->fd.get(), fresh_fd);
  // Past its time, an entry the sweep has not reached yet is not taken either.
  Pair stale = MakePair();
  ASSERT_TRUE(pool.Put("k", {std::move(stale.ours), nullptr, t0}));
  EXPECT_FALSE(pool.Take("k", later));
  EXPECT_EQ(gauge.load(), 0);
}

TEST(UpstreamPoolTest, IsBoundedPerKey) {
  UpstreamPool pool(nullptr);
  const auto now = Clock::now();
  std::vector<Pair> pairs;
  for (size_t i = 0; i < UpstreamPool::kMaxPerKey; i++) {
    pairs.push_back(MakePair());
    ASSERT_TRUE(pool.Put("k", {std::move(pairs.back().ours), nullptr, now}));
  }
  Pair extra = MakePair();
  EXPECT_FALSE(pool.Put("k", {std::move(extra.ours), nullptr, now}));
  EXPECT_TRUE(pool.Put("k2", {std::move(MakePair().ours), nullptr, now}));
  pool.Clear();
  EXPECT_EQ(pool.size(), 0u);
}

// One sandbox fills at most its share (kMaxPerSandbox, over any number of
// keys): another sandbox still gets room, and so does the first once an
// entry of its own leaves.
TEST(UpstreamPoolTest, IsBoundedPerSandbox) {
  std::atomic<int64_t> gauge{0};
  UpstreamPool pool(&gauge);
  const auto now = Clock::now();
  const auto a = Loopback();
  auto key_of = [&](uint64_t sandbox, size_t i) {
    return UpstreamPool::Key(sandbox, false, "h" + std::to_string(i) + ".test", 80, a);
  };
  std::vector<Pair> pairs;
  for (size_t i = 0; i < UpstreamPool::kMaxPerSandbox; i++) {
    pairs.push_back(MakePair());
    ASSERT_TRUE(pool.Put(key_of(7, i % 8), {std::move(pairs.back().ours), nullptr, now})) << i;
  }
  EXPECT_FALSE(pool.Put(key_of(7, 100), {std::move(MakePair().ours), nullptr, now}));
  EXPECT_TRUE(pool.Put(key_of(8, 0), {std::move(MakePair().ours), nullptr, now}));
  EXPECT_EQ(gauge.load(), static_cast<int64_t>(UpstreamPool::kMaxPerSandbox + 1));
  ASSERT_TRUE(pool.Take(key_of(7, 0), now));
  EXPECT_TRUE(pool.Put(key_of(7, 100), {std::move(MakePair().ours), nullptr, now}));
  pool.Clear();
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(gauge.load(), 0);
  // Cleared, the share is whole again.
  for (size_t i = 0; i < 2; i++)
    EXPECT_TRUE(pool.Put(key_of(7, i), {std::move(MakePair().ours), nullptr, now}));
  pool.Clear();
}

}  // namespace
}  // namespace egressd::proxy
