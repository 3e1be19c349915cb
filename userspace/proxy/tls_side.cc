#include "userspace/proxy/tls_side.h"

namespace egressd::proxy {

TlsSide::TlsSide(tls::TlsStream stream) : stream_(std::move(stream)) {}

tls::TlsIo TlsSide::Decrypt(Direction& plain) {
  blocked_on_space_ = false;
  while (true) {
    if (plain.end == plain.cap) {
      blocked_on_space_ = true;
      // The handshake still goes on (it produces no plaintext).
      if (!stream_.handshake_done() && stream_.Handshake() == tls::TlsIo::kError)
        return tls::TlsIo::kError;
      return tls::TlsIo::kOk;
    }
    tls::TlsRead r = stream_.ReadPlaintext({plain.buf.get() + plain.end, plain.cap - plain.end});
    switch (r.status) {
      case tls::TlsIo::kOk:
        plain.end += r.bytes;
        continue;
      case tls::TlsIo::kNeedMore:  // everything received was read
        return tls::TlsIo::kOk;
      case tls::TlsIo::kClosed:
        plain.eof = true;
        return tls::TlsIo::kClosed;
      case tls::TlsIo::kError:
        if (stream_.error().kind == tls::TlsErrorKind::kTruncated) {
          // The peer closed TCP without close_notify: many servers and
          // clients do; HTTP framing decides whether a message was cut.
          plain.eof = true;
          return tls::TlsIo::kClosed;
        }
        return tls::TlsIo::kError;
    }
  }
}

void TlsSide::Encrypt(Direction& plain) {
  while (true) {
    std::span<const uint8_t> next = plain.NextToSend();
    if (next.empty()) return;
    size_t n = stream_.WritePlaintext(next);
    if (n == 0) return;  // handshake not done, or no room until ciphertext is sent
    plain.Sent(n);
  }
}

bool TlsSide::ShutdownAndFlushed() {
  if (!shutdown_queued_) {
    stream_.Shutdown();
    shutdown_queued_ = true;
  }
  return stream_.pending_ciphertext_bytes() == 0;
}

}  // namespace egressd::proxy
