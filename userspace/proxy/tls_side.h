// One socket side of an intercepted connection: the TLS stream between that
// socket's ciphertext and the plaintext Direction the HTTP session reads
// (client side: what the sandbox sends) or the session writes (upstream side:
// what the origin sends back, and the requests going to it).
//
//   socket recv -> RecvSpace/Received -> Decrypt -> plaintext Direction
//   plaintext Direction -> Encrypt -> ToSend -> socket send -> Consumed
//
// The connection still does every socket operation; this only moves bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "userspace/proxy/byte_direction.h"
#include "userspace/tls/tls_stream.h"

namespace egressd::proxy {

class TlsSide {
 public:
  explicit TlsSide(tls::TlsStream stream);

  // Where the socket's next recv lands (empty: no room, do not recv now):
  // the stream's own input queue. Call only while no recv is in flight.
  std::span<uint8_t> RecvSpace() { return stream_.RecvSpace(); }
  void Received(size_t n) { stream_.Received(n); }
  void ReceivedEof() { stream_.FeedEof(); }
  // Bytes received elsewhere (the first flight, read before the decision to
  // intercept): copied in, as far as the input queue takes them (128 KiB).
  void Preload(std::span<const uint8_t> bytes) { stream_.FeedCiphertext(bytes); }

  // Feeds what was received and decrypts into `plain` ([end, cap)); drives
  // the handshake. kOk: progress made or none possible; kClosed: the peer
  // ended its stream (close_notify, or TCP's end: plain.eof is set);
  // kError: stream().error() says why.
  tls::TlsIo Decrypt(Direction& plain);
  // Ciphertext or plaintext waits that a Decrypt could move now (it stopped
  // because `plain` was full).
  bool HasInput() const { return stream_.ciphertext_in_bytes() > 0 || blocked_on_space_; }
  // Encrypts what `plain` may send now.
  void Encrypt(Direction& plain);
  // Encrypts bytes of egressd's own (a reply); returns how many were taken.
  size_t EncryptOwn(std::span<const uint8_t> bytes) { return stream_.WritePlaintext(bytes); }
  // Queues close_notify once; true when all ciphertext has been sent.
  bool ShutdownAndFlushed();

  // Nothing waits on this side either way (TlsStream::Quiet, and no
  // plaintext held back for room): it may be parked.
  bool Quiet() const { return stream_.Quiet() && !blocked_on_space_ && !shutdown_queued_; }
  // Parked: gives back the stream's idle buffers (no receive in flight).
  void ReleaseIdleMemory() {
    if (Quiet()) stream_.ReleaseIdleMemory();
  }

  // Ciphertext for the socket: valid and unchanged until Consumed.
  std::span<const uint8_t> ToSend() const { return stream_.PendingCiphertext(); }
  void Consumed(size_t n) { stream_.ConsumeCiphertext(n); }

  tls::TlsStream& stream() { return stream_; }
  const tls::TlsStream& stream() const { return stream_; }

 private:
  tls::TlsStream stream_;
  bool blocked_on_space_ = false;
  bool shutdown_queued_ = false;
};

}  // namespace egressd::proxy
