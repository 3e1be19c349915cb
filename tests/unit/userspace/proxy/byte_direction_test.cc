#include "userspace/proxy/byte_direction.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace egressd::proxy {
namespace {

void Put(Direction& d, const std::string& s) {
  memcpy(d.buf.get() + d.end, s.data(), s.size());
  d.end += s.size();
}

std::string SendAll(Direction& d, size_t piece = 1000) {
  std::string out;
  while (true) {
    auto next = d.NextToSend();
    if (next.empty()) break;
    size_t n = std::min(piece, next.size());
    out.append(reinterpret_cast<const char*>(next.data()), n);
    d.Sent(n);
  }
  return out;
}

TEST(Direction, SendsOnlyWhatIsReady) {
  RelayBufferPool pool(64, 0, 0);
  Direction d;
  d.Allocate(pool);
  Put(d, "abcdef");
  d.ready = 3;
  EXPECT_EQ(SendAll(d), "abc");
  d.ready = 6;
  EXPECT_EQ(SendAll(d), "def");
  EXPECT_TRUE(d.Drained());
}

TEST(Direction, ASpliceReplacesTheHeadInOrder) {
  RelayBufferPool pool(64, 0, 0);
  Direction d;
  d.Allocate(pool);
  Put(d, "body|HEAD|rest");
  d.ready = 5;  // "body|" may go; the head [5, 9) is being decided
  d.splice = std::make_unique<HeadSplice>(
      HeadSplice{.at = 5, .skip_to = 9, .bytes = "NEW-LONGER-HEAD", .sent = 0});
  EXPECT_EQ(SendAll(d, 2), "body|");  // stops at the splice: the head is held
  d.ready = d.end;                    // released
  EXPECT_EQ(SendAll(d, 2), "NEW-LONGER-HEAD|rest");
  EXPECT_FALSE(d.splice);
  EXPECT_TRUE(d.Drained());
}

TEST(Direction, DiscardDropsASpliceBehindIt) {
  RelayBufferPool pool(64, 0, 0);
  Direction d;
  d.Allocate(pool);
  Put(d, "HEADbody");
  d.splice =
      std::make_unique<HeadSplice>(HeadSplice{.at = 0, .skip_to = 4, .bytes = "X", .sent = 0});
  d.ready = 8;
  d.DiscardUpTo(8);
  EXPECT_FALSE(d.splice);
  EXPECT_TRUE(d.NextToSend().empty());
}

TEST(Direction, CompactKeepsPositionsAndTheSplice) {
  RelayBufferPool pool(16, 0, 0);
  Direction d;
  d.Allocate(pool);
  Put(d, "0123456789ABCDEF");  // full
  d.ready = 4;
  EXPECT_EQ(SendAll(d), "0123");
  d.scanned = 12;
  d.head_end = 12;
  d.splice =
      std::make_unique<HeadSplice>(HeadSplice{.at = 8, .skip_to = 12, .bytes = "hh", .sent = 0});
  EXPECT_EQ(d.Compact(!d.idle()), 4u);
  EXPECT_EQ(d.start, 0u);
  EXPECT_EQ(d.end, 12u);
  EXPECT_EQ(d.head_end, 8u);
  EXPECT_EQ(d.splice->at, 4u);
  d.ready = d.end;
  EXPECT_EQ(SendAll(d), "4567hhCDEF");
}

TEST(Direction, CompactWaitsForOperationsInFlight) {
  RelayBufferPool pool(8, 0, 0);
  Direction d;
  d.Allocate(pool);
  Put(d, "01234567");
  d.ready = 2;
  d.Sent(2);
  d.recv_pending = true;
  EXPECT_EQ(d.Compact(!d.idle()), 0u);
  d.recv_pending = false;
  EXPECT_EQ(d.Compact(!d.idle()), 2u);
}

}  // namespace
}  // namespace egressd::proxy
