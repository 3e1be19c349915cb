#include "userspace/protocol/websocket_frames.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace egressd::protocol {
namespace {

using Bytes = std::vector<uint8_t>;
using Result = WebSocketFrameValidator::Result;

// One frame: first byte as given, payload of `len` bytes, masked or not.
Bytes Frame(uint8_t b0, uint64_t len, bool masked) {
  Bytes out{b0};
  uint8_t mask_bit = masked ? 0x80 : 0;
  if (len < 126) {
    out.push_back(static_cast<uint8_t>(mask_bit | len));
  } else if (len <= 0xffff) {
    out.push_back(mask_bit | 126);
    out.push_back(static_cast<uint8_t>(len >> 8));
    out.push_back(static_cast<uint8_t>(len));
  } else {
    out.push_back(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(len >> shift));
  }
  if (masked) out.insert(out.end(), {0x11, 0x22, 0x33, 0x44});
  out.insert(out.end(), len, 0x5a);
  return out;
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Outcome {
  Result result;
  std::string error;
  size_t held;
  uint64_t frames;
};

// Feeds `in` in pieces of `piece` bytes.
Outcome Validate(const Bytes& in, WebSocketRules rules, size_t piece = SIZE_MAX) {
  WebSocketFrameValidator v(rules);
  Result r = Result::kOk;
  for (size_t off = 0; off < in.size() && r == Result::kOk; off += piece) {
    size_t n = std::min(piece, in.size() - off);
    r = v.Feed({in.data() + off, n});
  }
  return {r, v.error(), v.held(), v.frames()};
}

const WebSocketRules kClient{.from_client = true, .rsv1_allowed = false};
const WebSocketRules kServer{.from_client = false, .rsv1_allowed = false};
const WebSocketRules kClientDeflate{.from_client = true, .rsv1_allowed = true};

TEST(WebSocketFrames, MaskedClientFramesPassInAnySplit) {
  Bytes in = Cat({Frame(0x81, 5, true), Frame(0x82, 300, true), Frame(0x82, 70000, true),
                  Frame(0x89, 0, true), Frame(0x88, 2, true)});
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{4096}, SIZE_MAX}) {
    Outcome o = Validate(in, kClient, piece);
    EXPECT_EQ(o.result, Result::kOk) << piece << ": " << o.error;
    EXPECT_EQ(o.frames, 5u);
    EXPECT_EQ(o.held, 0u);
  }
}

TEST(WebSocketFrames, ServerFramesAreUnmasked) {
  EXPECT_EQ(Validate(Frame(0x81, 3, false), kServer).result, Result::kOk);
  Outcome o = Validate(Frame(0x81, 3, true), kServer);
  EXPECT_EQ(o.result, Result::kViolation);
  EXPECT_EQ(o.error, "masked frame from the server");
}

TEST(WebSocketFrames, UnmaskedClientFrameIsRefused) {
  Outcome o = Validate(Frame(0x81, 3, false), kClient);
  EXPECT_EQ(o.result, Result::kViolation);
  EXPECT_EQ(o.error, "unmasked frame from the client");
}

TEST(WebSocketFrames, HttpBytesAreNotFrames) {
  std::string req = "GET /admin HTTP/1.1\r\nHost: denied.test\r\n\r\n";
  Outcome o = Validate(Bytes(req.begin(), req.end()), kClient);
  EXPECT_EQ(o.error, "unknown opcode 7");  // 'G' is 0x47: refused on its first byte
}

TEST(WebSocketFrames, UnknownOpcodes) {
  for (uint8_t op : {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf}) {
    Outcome o = Validate(Frame(0x80 | op, 0, true), kClient);
    EXPECT_EQ(o.result, Result::kViolation) << int(op);
    EXPECT_EQ(o.error, "unknown opcode " + std::to_string(op));
  }
}

TEST(WebSocketFrames, ReservedBits) {
  EXPECT_EQ(Validate(Frame(0xc1, 1, true), kClient).error,
            "reserved bit RSV1 set without permessage-deflate");
  EXPECT_EQ(Validate(Frame(0xc1, 1, true), kClientDeflate).result, Result::kOk);
  EXPECT_EQ(Validate(Frame(0xa1, 1, true), kClientDeflate).error, "reserved bit RSV2 or RSV3 set");
  EXPECT_EQ(Validate(Frame(0x91, 1, true), kClientDeflate).error, "reserved bit RSV2 or RSV3 set");
  EXPECT_EQ(Validate(Frame(0xc9, 0, true), kClientDeflate).error, "RSV1 on a control frame");
  // RSV1 marks a compressed message on its first frame only.
  EXPECT_EQ(Validate(Cat({Frame(0x41, 1, true), Frame(0xc0, 1, true)}), kClientDeflate).error,
            "RSV1 on a continuation frame");
}

TEST(WebSocketFrames, ControlFrames) {
  EXPECT_EQ(Validate(Frame(0x09, 0, true), kClient).error, "fragmented control frame");
  EXPECT_EQ(Validate(Frame(0x89, 126, true), kClient).error, "control frame longer than 125 bytes");
  EXPECT_EQ(Validate(Frame(0x89, 125, true), kClient).result, Result::kOk);
  EXPECT_EQ(Validate(Frame(0x88, 1, true), kClient).error, "Close frame with a one-byte payload");
}

TEST(WebSocketFrames, Fragmentation) {
  // text(no FIN), ping in between, continuation(FIN): fine.
  Bytes ok =
      Cat({Frame(0x01, 2, true), Frame(0x89, 1, true), Frame(0x80, 2, true), Frame(0x82, 1, true)});
  EXPECT_EQ(Validate(ok, kClient).result, Result::kOk);
  EXPECT_EQ(Validate(Frame(0x80, 1, true), kClient).error,
            "continuation frame outside a fragmented message");
  EXPECT_EQ(Validate(Cat({Frame(0x01, 1, true), Frame(0x81, 1, true)}), kClient).error,
            "new data message inside a fragmented message");
}

TEST(WebSocketFrames, Lengths) {
  // 126-form for a length that fits 7 bits, 127-form for one that fits 16.
  Bytes short16{0x82, 0x80 | 126, 0x00, 0x05, 1, 2, 3, 4};
  EXPECT_EQ(Validate(short16, kClient).error, "payload length not minimally encoded");
  Bytes short64{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00};
  EXPECT_EQ(Validate(short64, kClient).error, "payload length not minimally encoded");
  Bytes huge{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(Validate(huge, kClient).error, "payload length over 2^63");
}

TEST(WebSocketFrames, NothingAfterClose) {
  Outcome o = Validate(Cat({Frame(0x88, 2, true), Frame(0x81, 1, true)}), kClient);
  EXPECT_EQ(o.result, Result::kViolation);
  EXPECT_EQ(o.error, "frame after a Close frame");
}

TEST(WebSocketFrames, IncompleteHeaderIsHeldUntilDecided) {
  Bytes f = Frame(0x82, 200, true);  // 2 + 2 + 4 header bytes
  WebSocketFrameValidator v(kClient);
  for (size_t i = 0; i < 7; ++i) {
    ASSERT_EQ(v.Feed({f.data() + i, 1}), Result::kOk);
    EXPECT_EQ(v.held(), i + 1);
  }
  ASSERT_EQ(v.Feed({f.data() + 7, 1}), Result::kOk);
  EXPECT_EQ(v.held(), 0u);  // header decided; the payload passes as it comes
  ASSERT_EQ(v.Feed({f.data() + 8, 100}), Result::kOk);
  EXPECT_EQ(v.held(), 0u);
  EXPECT_EQ(v.frames(), 1u);
}

TEST(WebSocketFrames, ViolationIsSticky) {
  WebSocketFrameValidator v(kClient);
  Bytes bad = Frame(0x83, 0, true);
  EXPECT_EQ(v.Feed(bad), Result::kViolation);
  EXPECT_EQ(v.error_offset(), 0u);
  Bytes good = Frame(0x81, 0, true);
  EXPECT_EQ(v.Feed(good), Result::kViolation);
}

TEST(WebSocketFrames, ErrorOffsetIsTheOffendingByte) {
  Bytes in = Cat({Frame(0x81, 3, true), Frame(0x81, 3, false)});
  for (size_t piece : {size_t{1}, size_t{5}, SIZE_MAX}) {
    WebSocketFrameValidator v(kClient);
    Result r = Result::kOk;
    for (size_t off = 0; off < in.size() && r == Result::kOk; off += piece)
      r = v.Feed({in.data() + off, std::min(piece, in.size() - off)});
    EXPECT_EQ(r, Result::kViolation);
    EXPECT_EQ(v.error_offset(), 10u);  // second frame's mask/length byte
  }
}

TEST(WebSocketFrames, PermessageDeflateNegotiation) {
  EXPECT_TRUE(NegotiatesPermessageDeflate(
      {{"Upgrade", "websocket"},
       {"Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=15"}}));
  EXPECT_TRUE(
      NegotiatesPermessageDeflate({{"sec-websocket-extensions", "x-foo, Permessage-Deflate"}}));
  EXPECT_FALSE(
      NegotiatesPermessageDeflate({{"Sec-WebSocket-Extensions", "x-webkit-deflate-frame"}}));
  EXPECT_FALSE(NegotiatesPermessageDeflate({{"X-Note", "permessage-deflate"}}));
  EXPECT_FALSE(NegotiatesPermessageDeflate({}));
}

}  // namespace
}  // namespace egressd::protocol
