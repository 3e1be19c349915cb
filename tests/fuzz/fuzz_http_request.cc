#include <algorithm>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_http_common.h"
#include "userspace/protocol/http_fields.h"
#include "userspace/protocol/http_head_writer.h"
#include "userspace/protocol/http_request_stream.h"
#include "userspace/protocol/http_upgrade.h"

using egressd::protocol::EqualsIgnoreCase;
using egressd::protocol::HttpRequestStream;

namespace {

// Every accepted head, with Upgrade tokens other than websocket removed and
// written again from its fields (as the proxy does for a head a filter
// changed), is one complete head the parser accepts, for the same request
// with the same fields, and names no other protocol.
void CheckHeadRewrite(std::span<const uint8_t> in, const egressd::fuzz::Trace& trace) {
  size_t message_start = 0;
  for (auto [event, offset] : trace.events) {
    if (event == static_cast<int>(HttpRequestStream::Event::kMessageComplete)) {
      message_start = offset;
      continue;
    }
    HttpRequestStream original;
    auto o = original.Feed({in.data() + message_start, offset - message_start});
    if (o.event != HttpRequestStream::Event::kHeadComplete) continue;  // mid-stream state
    egressd::protocol::HttpRequestHead head = original.head();
    egressd::protocol::KeepOnlyWebSocketUpgrade(head.headers);
    std::string written = egressd::protocol::SerializeRequestHead(head);
    HttpRequestStream rewritten;
    auto r = rewritten.Feed({reinterpret_cast<const uint8_t*>(written.data()), written.size()});
    if (r.event != HttpRequestStream::Event::kHeadComplete || r.consumed != written.size())
      std::abort();
    const auto& rh = rewritten.head();
    if (head.host != rh.host || head.method != rh.method || head.target != rh.target ||
        head.headers != rh.headers || head.version_minor != rh.version_minor)
      std::abort();
    for (const auto& [name, value] : rh.headers) {
      if (egressd::protocol::EqualsIgnoreCase(name, "upgrade") &&
          egressd::protocol::ToLower(value).rfind("websocket", 0) != 0)
        std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  // The first 4 bytes (if any) choose the piece sizes of the second run.
  std::span<const uint8_t> split = in.first(std::min<size_t>(4, size));
  auto check_head = [](HttpRequestStream& s, int ev) {
    if (ev != static_cast<int>(HttpRequestStream::Event::kHeadComplete)) return;
    const auto& h = s.head();
    if (h.host.empty() || h.method.empty() || h.target.empty()) std::abort();
    if (h.method == "CONNECT") std::abort();
    if (h.version_major != 1 || (h.version_minor != 0 && h.version_minor != 1)) std::abort();
    if (h.headers.size() > egressd::protocol::kMaxHttpHeaders) std::abort();
    // RFC 9112 6.1: an HTTP/1.0 request with Transfer-Encoding is refused.
    for (const auto& field : h.headers) {
      if (h.version_minor == 0 && EqualsIgnoreCase(field.first, "transfer-encoding")) std::abort();
      // has_body (GET/HEAD bodies are refused by it) never misses a body.
      if (!h.has_body && EqualsIgnoreCase(field.first, "transfer-encoding")) std::abort();
      if (!h.has_body && EqualsIgnoreCase(field.first, "content-length") &&
          field.second.find_first_not_of('0') != std::string::npos)
        std::abort();
    }
    for (char c : h.host) {
      if (c >= 'A' && c <= 'Z') std::abort();
    }
  };
  HttpRequestStream whole;
  auto a = egressd::fuzz::Drive(whole, in, {}, check_head);
  HttpRequestStream pieces;
  auto b = egressd::fuzz::Drive(pieces, in, split, check_head);
  // Both runs see the same messages; they may only differ in which check
  // fires first inside one head.
  if (a.error != b.error) std::abort();
  if (a.events != b.events) std::abort();
  CheckHeadRewrite(in, a);
  return 0;
}
