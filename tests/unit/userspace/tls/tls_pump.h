// Test-only: two TlsStreams talking through memory, the way the proxy's
// connection moves bytes between a stream and a socket.
#pragma once

#include <cstdint>
#include <vector>

#include "userspace/tls/tls_stream.h"

namespace egressd::tls::testing {

// Moves what `from` has to send into `to`, as far as `to` takes it. Returns
// the bytes moved.
inline size_t Shuttle(TlsStream& from, TlsStream& to) {
  size_t moved = 0;
  for (;;) {
    auto view = from.PendingCiphertext();
    if (view.empty()) break;
    size_t n = to.FeedCiphertext(view);
    if (n == 0) break;
    from.ConsumeCiphertext(n);
    moved += n;
  }
  return moved;
}

// Advances both handshakes, moving bytes both ways, until nothing moves.
inline void PumpHandshake(TlsStream& client, TlsStream& server) {
  for (int i = 0; i < 100; ++i) {
    client.Handshake();
    server.Handshake();
    size_t moved = Shuttle(client, server) + Shuttle(server, client);
    if (moved == 0) break;
  }
}

// Reads everything `s` can decrypt now into `out`; returns the last status.
inline TlsIo ReadAll(TlsStream& s, std::vector<uint8_t>& out) {
  uint8_t buf[4096];
  for (;;) {
    TlsRead r = s.ReadPlaintext(buf);
    if (r.status != TlsIo::kOk) return r.status;
    out.insert(out.end(), buf, buf + r.bytes);
  }
}

}  // namespace egressd::tls::testing
