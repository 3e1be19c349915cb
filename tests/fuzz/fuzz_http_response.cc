#include <algorithm>
#include <cstdlib>
#include <span>

#include "tests/fuzz/fuzz_http_common.h"
#include "userspace/protocol/http_response_stream.h"

using egressd::protocol::HttpResponseStream;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // First byte: bit 0 = response to HEAD, bit 1 = call Finish at the end.
  const uint8_t mode = data[0];
  std::span<const uint8_t> in(data + 1, size - 1);
  std::span<const uint8_t> split = in.first(std::min<size_t>(4, in.size()));
  bool upgraded = false;
  auto check = [&upgraded](HttpResponseStream& s, int ev) {
    if (ev == static_cast<int>(HttpResponseStream::Event::kHeadComplete)) {
      if (s.status() < 100 || s.status() > 599) std::abort();
    }
    if (ev == static_cast<int>(HttpResponseStream::Event::kMessageComplete) && s.status() == 101) {
      upgraded = true;
    }
  };
  HttpResponseStream whole, pieces;
  whole.ExpectResponseTo((mode & 1) ? "HEAD" : "GET");
  pieces.ExpectResponseTo((mode & 1) ? "HEAD" : "GET");
  auto a = egressd::fuzz::Drive(whole, in, {}, check);
  auto b = egressd::fuzz::Drive(pieces, in, split, check);
  if (a.error != b.error || a.events != b.events) std::abort();
  if ((mode & 2) && !a.error && !upgraded) {
    auto fa = whole.Finish();
    auto fb = pieces.Finish();
    if (fa.event != fb.event || fa.consumed != 0) std::abort();
    if (fa.event == HttpResponseStream::Event::kError && whole.error().empty()) std::abort();
  }
  return 0;
}
