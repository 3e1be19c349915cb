// The WebSocket frame validator must decide the same whatever way TCP split
// the stream: the bytes are fed once whole and once in pieces (sizes taken
// from the input), and both runs must agree on the verdict, its reason and
// offset, the frames accepted and the bytes held back.
#include <algorithm>
#include <cstdlib>
#include <span>

#include "userspace/protocol/websocket_frames.h"

using egressd::protocol::WebSocketFrameValidator;
using egressd::protocol::WebSocketRules;

namespace {

// Feeds `in` in pieces whose sizes cycle through `split` (empty: at once).
WebSocketFrameValidator::Result FeedAll(WebSocketFrameValidator& v, std::span<const uint8_t> in,
                                        std::span<const uint8_t> split) {
  auto result = WebSocketFrameValidator::Result::kOk;
  size_t off = 0;
  size_t piece = 0;
  while (off < in.size()) {
    size_t n = split.empty() ? in.size() : split[piece++ % split.size()] % 32 + 1;
    n = std::min(n, in.size() - off);
    result = v.Feed(in.subspan(off, n));
    off += n;
    if (result == WebSocketFrameValidator::Result::kViolation) {
      // Stays refused.
      if (v.Feed(in.subspan(off)) != result) std::abort();
      break;
    }
    if (v.held() > 14 || v.held() > off) std::abort();
  }
  return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // First byte: bit 0 = frames from the client, bit 1 = permessage-deflate.
  const WebSocketRules rules{.from_client = (data[0] & 1) != 0, .rsv1_allowed = (data[0] & 2) != 0};
  std::span<const uint8_t> in(data + 1, size - 1);
  std::span<const uint8_t> split = in.first(std::min<size_t>(4, in.size()));
  WebSocketFrameValidator whole(rules), pieces(rules);
  auto a = FeedAll(whole, in, {});
  auto b = FeedAll(pieces, in, split);
  if (a != b || whole.error() != pieces.error() || whole.frames() != pieces.frames()) std::abort();
  if (a == WebSocketFrameValidator::Result::kViolation) {
    if (whole.error().empty() || whole.error_offset() != pieces.error_offset()) std::abort();
    if (whole.error_offset() >= in.size()) std::abort();
  } else if (whole.held() != pieces.held()) {
    std::abort();
  }
  return 0;
}
