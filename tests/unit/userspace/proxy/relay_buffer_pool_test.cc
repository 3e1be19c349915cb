#include "userspace/proxy/relay_buffer_pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "userspace/proxy/byte_direction.h"

namespace egressd::proxy {
namespace {

TEST(RelayBufferPool, KeepsReturnedBuffersUpToItsMaximum) {
  RelayBufferPool pool(64 * 1024, 0, 1);
  {
    RelayBuffer a = pool.Take();
    RelayBuffer b = pool.Take();
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    EXPECT_NE(a.get(), b.get());
    memset(a.get(), 1, 64 * 1024);  // writable, the whole size
    EXPECT_EQ(pool.mapped(), 2u);
  }
  EXPECT_EQ(pool.kept(), 1u);    // one kept for the next connection
  EXPECT_EQ(pool.mapped(), 1u);  // the other unmapped
  RelayBuffer c = pool.Take();
  EXPECT_TRUE(c);
  EXPECT_EQ(pool.kept(), 0u);
  EXPECT_EQ(pool.mapped(), 1u);
}

TEST(RelayBufferPool, AMovedBufferIsGivenBackOnce) {
  RelayBufferPool pool(4096, 0, 4);
  RelayBuffer a = pool.Take();
  RelayBuffer b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(b);
  b.Release();
  b.Release();
  EXPECT_EQ(pool.kept(), 1u);
}

TEST(RelayBufferPool, TrimUnmapsWhatWasNotNeededForAPeriod) {
  RelayBufferPool pool(4096, 1, 100);
  {
    std::vector<RelayBuffer> held;
    for (int i = 0; i < 5; ++i) held.push_back(pool.Take());
  }
  EXPECT_EQ(pool.kept(), 5u);
  pool.Trim();  // the period in which they were taken: all were needed
  EXPECT_EQ(pool.kept(), 5u);
  {
    RelayBuffer a = pool.Take();
    RelayBuffer b = pool.Take();  // at most 2 of the 5 needed in this period
  }
  pool.Trim();
  EXPECT_EQ(pool.kept(), 2u);  // 3 never needed, unmapped
  EXPECT_EQ(pool.mapped(), 2u);
  pool.Trim();  // a quiet period: down to the minimum
  EXPECT_EQ(pool.kept(), 1u);
  EXPECT_EQ(pool.mapped(), 1u);
}

TEST(Direction, ReleaseBufferGivesItBackAndStartsOver) {
  RelayBufferPool pool(4096, 0, 4);
  Direction d;
  ASSERT_TRUE(d.Allocate(pool));
  EXPECT_EQ(d.cap, 4096u);
  d.end = d.start = d.ready = d.scanned = 10;
  d.ReleaseBuffer();
  EXPECT_FALSE(d.buf);
  EXPECT_EQ(d.cap, 0u);
  EXPECT_EQ(d.end, 0u);
  EXPECT_TRUE(d.NextToSend().empty());
  EXPECT_EQ(pool.kept(), 1u);
  ASSERT_TRUE(d.Allocate(pool));  // the kept one again
  EXPECT_EQ(pool.kept(), 0u);
}

}  // namespace
}  // namespace egressd::proxy
