// Shared driver for the HTTP stream fuzz targets: feeds the same bytes once
// whole and once in pieces (sizes taken from the input) and checks that both
// runs agree and that the Step contract holds.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <utility>
#include <vector>

namespace egressd::fuzz {

struct Trace {
  std::vector<std::pair<int, size_t>> events;  // non-error events, absolute offsets
  bool error = false;
};

// Stream: has Feed(span) -> Step{event, consumed}; kNeedMore = 0, kError = 3.
// `split` gives piece sizes (cycled); empty = feed everything at once.
template <typename Stream, typename OnEvent>
Trace Drive(Stream& s, std::span<const uint8_t> in, std::span<const uint8_t> split,
            OnEvent on_event) {
  Trace t;
  size_t off = 0;
  size_t avail = in.size();
  size_t piece = 0;
  if (!split.empty()) avail = std::min<size_t>(in.size(), split[0] % 64 + 1);
  for (size_t guard = 0; guard < 4 * in.size() + 16; ++guard) {
    auto st = s.Feed(in.subspan(off, avail - off));
    if (st.consumed > avail - off) std::abort();
    off += st.consumed;
    int ev = static_cast<int>(st.event);
    if (ev == 3) {
      if (s.error().empty()) std::abort();
      // "internal:" errors mean our strict scanners and llhttp disagreed on
      // framing: a bug to find, not an input to reject.
      if (s.error().rfind("internal:", 0) == 0) std::abort();
      // Stays failed.
      if (static_cast<int>(s.Feed(in.subspan(off, avail - off)).event) != 3) std::abort();
      t.error = true;
      return t;
    }
    if (ev == 0) {
      if (off != avail) std::abort();  // kNeedMore consumes everything
      if (avail == in.size()) return t;
      ++piece;
      size_t step = split.empty() ? in.size() : split[piece % split.size()] % 64 + 1;
      avail = std::min(in.size(), avail + step);
      continue;
    }
    t.events.emplace_back(ev, off);
    on_event(s, ev);
  }
  std::abort();  // no progress
}

}  // namespace egressd::fuzz
