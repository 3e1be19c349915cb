// Shared driver for the TLS stream fuzz targets: feeds bytes from the peer to
// a TlsStream the way the proxy's connection would (feed, advance, send the
// output), whole or in pieces whose sizes come from the input, and checks the
// properties every stream keeps whatever it is fed:
//   - every byte fed is eventually taken or the stream fails (no stall: the
//     proxy's connection would wait forever);
//   - the handshake never completes (nobody can finish it without the keys);
//   - ciphertext waiting to be sent stays within kCiphertextOutCapacity;
//   - end of input always ends the stream with an error that has a reason and
//     a kind (never kInternal), and a failed stream takes nothing more.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "userspace/tls/tls_stream.h"

namespace egressd::fuzz {

inline void DriveTls(tls::TlsStream& s) {
  if (!s.handshake_done()) s.Handshake();
  if (s.handshake_done()) std::abort();  // cannot happen without the other side's keys
  if (s.pending_ciphertext_bytes() > tls::TlsStream::kCiphertextOutCapacity) std::abort();
  for (auto view = s.PendingCiphertext(); !view.empty(); view = s.PendingCiphertext()) {
    s.ConsumeCiphertext(view.size());  // "sent"
  }
}

// Feeds `in` (in pieces sized by `split`, cycled; empty = whole) then EOF.
// Returns the error kind the stream ended with.
inline tls::TlsErrorKind FeedTls(tls::TlsStream& s, std::span<const uint8_t> in,
                                 std::span<const uint8_t> split) {
  DriveTls(s);  // a client sends its hello first
  size_t off = 0;
  size_t piece = 0;
  while (off < in.size() && !s.failed()) {
    size_t step = split.empty() ? in.size() : split[piece++ % split.size()] % 512 + 1;
    auto chunk = in.subspan(off, std::min(step, in.size() - off));
    while (!chunk.empty() && !s.failed()) {
      size_t n = s.FeedCiphertext(chunk);
      if (n > chunk.size()) std::abort();
      chunk = chunk.subspan(n);
      off += n;
      DriveTls(s);
      if (n == 0 && !s.failed() && s.FeedCiphertext(chunk) == 0) std::abort();  // stalled
    }
  }
  if (!s.failed()) {
    s.FeedEof();
    DriveTls(s);
  }
  if (!s.failed()) std::abort();  // EOF always ends a handshake
  const auto& e = s.error();
  if (e.reason.empty()) std::abort();
  if (e.kind == tls::TlsErrorKind::kInternal || e.kind == tls::TlsErrorKind::kNone) std::abort();
  // Stays failed.
  const uint8_t more[] = {0x16, 0x03, 0x01, 0x00, 0x01, 0x01};
  if (s.FeedCiphertext(more) != 0 || s.Handshake() != tls::TlsIo::kError) std::abort();
  return e.kind;
}

}  // namespace egressd::fuzz
