// DNS over TCP framing must cut the stream the same way whatever way TCP
// split it: the bytes are fed once whole and once in pieces (sizes taken
// from the input), and both runs must give the same messages at the same
// offsets and the same error at the same offset. The framer never holds more
// than one message, every message is within bounds, and the messages taken,
// framed again, are exactly the bytes they came from.
#include <algorithm>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "userspace/protocol/dns_tcp_framing.h"

using egressd::protocol::DnsTcpFramer;

namespace {

struct Trace {
  std::vector<std::pair<std::vector<uint8_t>, size_t>> messages;  // and the offset after each
  std::string error;
  uint64_t error_offset = 0;
  size_t held = 0;
};

// Feeds `in` in pieces whose sizes cycle through `split` (empty: at once).
Trace FeedAll(std::span<const uint8_t> in, std::span<const uint8_t> split, size_t max) {
  DnsTcpFramer framer(max);
  Trace t;
  size_t off = 0;  // bytes handed to the framer so far
  size_t taken = 0;
  size_t piece = 0;
  do {
    size_t n = split.empty() ? in.size() : split[piece++ % split.size()] % 32 + 1;
    n = std::min(n, in.size() - off);
    std::span<const uint8_t> data = in.subspan(off, n);
    off += n;
    // Each step takes at least one byte or ends the piece.
    const size_t max_steps = data.size() + 2;
    for (size_t steps = 0;; ++steps) {
      if (steps > max_steps) std::abort();  // no progress
      auto step = framer.Feed(data);
      if (step.consumed > data.size()) std::abort();
      data = data.subspan(step.consumed);
      taken += step.consumed;
      if (step.event == DnsTcpFramer::Event::kNeedMore) {
        if (!data.empty()) std::abort();  // kNeedMore takes everything
        break;
      }
      if (step.event == DnsTcpFramer::Event::kError) {
        if (framer.error().empty() || framer.error_offset() + 2 != taken) std::abort();
        // Stays failed, taking nothing more.
        auto again = framer.Feed(in.subspan(off));
        if (again.event != DnsTcpFramer::Event::kError || again.consumed != 0) std::abort();
        t.error = framer.error();
        t.error_offset = framer.error_offset();
        return t;
      }
      auto m = framer.message();
      if (m.empty() || m.size() > max || framer.held() != 0) std::abort();
      t.messages.emplace_back(std::vector<uint8_t>(m.begin(), m.end()), taken);
    }
    if (framer.held() > 2 + max) std::abort();
  } while (off < in.size());
  t.held = framer.held();
  if (taken != in.size()) std::abort();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // First byte: the largest message, small (1..256) or the forwarder's 4096.
  const size_t max = (data[0] & 0x80) ? 4096 : (data[0] & 0x7f) * 2 + 1;
  std::span<const uint8_t> in(data + 1, size - 1);
  std::span<const uint8_t> split = in.first(std::min<size_t>(4, in.size()));
  Trace whole = FeedAll(in, {}, max);
  Trace pieces = FeedAll(in, split, max);
  if (whole.messages != pieces.messages || whole.error != pieces.error ||
      whole.error_offset != pieces.error_offset || whole.held != pieces.held)
    std::abort();
  // The messages, framed again, are the stream up to the last one.
  std::vector<uint8_t> reframed;
  for (const auto& [m, end] : whole.messages) {
    auto framed = egressd::protocol::FrameDnsTcpMessage(m);
    reframed.insert(reframed.end(), framed.begin(), framed.end());
    if (reframed.size() != end) std::abort();
  }
  if (!std::equal(reframed.begin(), reframed.end(), in.begin())) std::abort();
  if (whole.error.empty() && reframed.size() + whole.held != in.size()) std::abort();
  return 0;
}
