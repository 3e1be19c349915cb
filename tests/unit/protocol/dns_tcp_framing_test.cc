#include "userspace/protocol/dns_tcp_framing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace egressd::protocol {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes Framed(const std::string& message) {
  return FrameDnsTcpMessage({reinterpret_cast<const uint8_t*>(message.data()), message.size()});
}

Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Result {
  std::vector<std::string> messages;
  std::string error;
  uint64_t error_offset = 0;
  size_t held = 0;
};

// Feeds `stream` in pieces of `piece` bytes (0: at once).
Result FeedAll(const Bytes& stream, size_t piece, size_t max = 4096) {
  DnsTcpFramer framer(max);
  Result r;
  size_t off = 0;
  while (off < stream.size() || off == 0) {
    size_t n = piece == 0 ? stream.size() - off : std::min(piece, stream.size() - off);
    std::span<const uint8_t> data(stream.data() + off, n);
    off += n;
    for (;;) {
      auto step = framer.Feed(data);
      data = data.subspan(step.consumed);
      if (step.event == DnsTcpFramer::Event::kNeedMore) break;
      if (step.event == DnsTcpFramer::Event::kError) {
        r.error = framer.error();
        r.error_offset = framer.error_offset();
        return r;
      }
      r.messages.emplace_back(framer.message().begin(), framer.message().end());
    }
    if (stream.empty()) break;
  }
  r.held = framer.held();
  return r;
}

TEST(DnsTcpFramer, CutsPipelinedMessagesWhateverTheSplit) {
  const Bytes stream = Concat({Framed("first"), Framed("second query"), Framed("x")});
  for (size_t piece : {0, 1, 2, 3, 7}) {
    Result r = FeedAll(stream, piece);
    EXPECT_EQ(r.messages, (std::vector<std::string>{"first", "second query", "x"})) << piece;
    EXPECT_EQ(r.error, "") << piece;
    EXPECT_EQ(r.held, 0u) << piece;
  }
}

TEST(DnsTcpFramer, HoldsAnIncompleteMessage) {
  Bytes stream = Concat({Framed("whole"), Framed("cut short")});
  stream.resize(stream.size() - 3);
  for (size_t piece : {0, 1, 4}) {
    Result r = FeedAll(stream, piece);
    EXPECT_EQ(r.messages, std::vector<std::string>{"whole"}) << piece;
    EXPECT_EQ(r.held, 2u + 9 - 3) << piece;
  }
  // One byte of a length prefix is held too.
  EXPECT_EQ(FeedAll({0x00}, 0).held, 1u);
}

TEST(DnsTcpFramer, RefusesTooLongAndEmptyMessagesAtTheirPrefix) {
  const Bytes too_long = Concat({Framed("ok"), {0x10, 0x01}, Bytes(100, 'a')});
  for (size_t piece : {0, 1, 3}) {
    Result r = FeedAll(too_long, piece);
    EXPECT_EQ(r.messages, std::vector<std::string>{"ok"});
    EXPECT_EQ(r.error, "message of 4097 bytes, more than 4096");
    EXPECT_EQ(r.error_offset, 4u);
  }
  Result empty = FeedAll(Concat({Framed("ok"), {0, 0}, Framed("never")}), 1);
  EXPECT_EQ(empty.messages, std::vector<std::string>{"ok"});
  EXPECT_EQ(empty.error, "empty message (length 0)");
  EXPECT_EQ(empty.error_offset, 4u);
  // At the limit is fine.
  EXPECT_EQ(FeedAll(Framed(std::string(16, 'q')), 0, 16).messages.size(), 1u);
}

TEST(DnsTcpFramer, StaysFailed) {
  DnsTcpFramer framer(8);
  const Bytes bad = {0, 9};
  EXPECT_EQ(framer.Feed(bad).event, DnsTcpFramer::Event::kError);
  const Bytes good = Framed("fine");
  auto step = framer.Feed(good);
  EXPECT_EQ(step.event, DnsTcpFramer::Event::kError);
  EXPECT_EQ(step.consumed, 0u);
}

TEST(DnsTcpFramer, NeverHoldsMoreThanOneMessage) {
  // A flood of bytes is taken message by message, never buffered past one.
  const Bytes stream = Concat({Framed(std::string(300, 'a')), Framed(std::string(300, 'b'))});
  DnsTcpFramer framer(4096);
  auto step = framer.Feed(stream);
  EXPECT_EQ(step.event, DnsTcpFramer::Event::kMessage);
  EXPECT_EQ(step.consumed, 302u);
  EXPECT_EQ(framer.message().size(), 300u);
  EXPECT_EQ(framer.held(), 0u);
}

TEST(FrameDnsTcpMessage, PrefixesTheLengthBigEndian) {
  const Bytes framed = Framed(std::string(0x0102, 'z'));
  ASSERT_EQ(framed.size(), 2u + 0x0102);
  EXPECT_EQ(framed[0], 0x01);
  EXPECT_EQ(framed[1], 0x02);
  const Bytes huge(70000, 0);
  EXPECT_TRUE(FrameDnsTcpMessage(huge).empty());
}

}  // namespace
}  // namespace egressd::protocol
