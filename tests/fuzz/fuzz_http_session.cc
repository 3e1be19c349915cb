// fuzz_http_session: arbitrary client and upstream bytes, in arbitrary
// pieces, through the HTTP session (driven by the fake connection of the unit
// tests). Whatever happens, what reaches the upstream is a run of requests
// the filters allowed: it parses without error, and every head in it names an
// allowed host.
//
// Input: records of [tag][length][bytes]: tag bit 0 = from the upstream
// (else from the client), bit 1 = that side closes after these bytes.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "tests/unit/userspace/proxy/fake_session_owner.h"
#include "userspace/protocol/http_request_stream.h"

using egressd::protocol::HttpRequestStream;

namespace {

void CheckUpstreamBytes(const std::string& sent) {
  HttpRequestStream parser;
  std::span<const uint8_t> rest(reinterpret_cast<const uint8_t*>(sent.data()), sent.size());
  for (size_t guard = 0; guard < sent.size() + 2; ++guard) {
    auto step = parser.Feed(rest);
    if (step.event == HttpRequestStream::Event::kError) std::abort();
    if (step.event == HttpRequestStream::Event::kHeadComplete) {
      const std::string& host = parser.head().host;
      if (host != "allowed.test" && host != "other.test") std::abort();
    }
    rest = rest.subspan(step.consumed);
    if (step.event == HttpRequestStream::Event::kNeedMore) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    spdlog::set_level(spdlog::level::off);  // every deny is logged
    return true;
  }();
  (void)quiet;
  egressd::proxy::FakeConnection c;
  bool client_closed = false, upstream_closed = false;
  size_t off = 0;
  while (off + 2 <= size) {
    uint8_t tag = data[off];
    size_t len = std::min<size_t>(data[off + 1], size - off - 2);
    std::string bytes(reinterpret_cast<const char*>(data) + off + 2, len);
    off += 2 + len;
    // The connection stops driving the session once it closed or became a tunnel.
    if (!c.closed.empty() || c.websocket) break;
    bool eof = tag & 2;
    if (tag & 1) {
      if (upstream_closed || c.upstream_host.empty()) continue;  // no upstream to hear from
      if (bytes.empty() && !eof) continue;
      c.UpstreamSends(bytes, eof);
      upstream_closed = eof;
    } else {
      if (client_closed || (bytes.empty() && !eof)) continue;
      c.ClientSends(bytes, false);
      if (eof && c.closed.empty()) c.ClientSends("", true);  // a recv is bytes or the end
      client_closed = eof;
    }
  }
  CheckUpstreamBytes(c.to_upstream);
  return 0;
}
