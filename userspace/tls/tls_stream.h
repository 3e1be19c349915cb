// One TLS connection over memory, with no socket: the caller moves ciphertext
// between this stream and its socket (io_uring), and plaintext between this
// stream and the HTTP session. Server side (facing the sandbox) and client
// side (facing the upstream) are the same class; TlsServerContext and
// TlsClientContext make them.
//
// Buffers (ciphertext_buffers.h: two queues of ours, which the SSL reads and
// appends to through a BIO of our own; allocated when needed):
//   ciphertext in   received bytes not yet decrypted: the socket receives
//                   straight into it (RecvSpace/Received); 4 KiB, 128 KiB
//                   while receives fill it (kCiphertextInCapacity at most).
//                   FeedCiphertext copies into it what fits.
//   ciphertext out  at most kCiphertextOutCapacity bytes waiting to be sent,
//                   freed when all is sent; WritePlaintext takes nothing
//                   while less than one record's room is free, so the caller
//                   stops reading its plaintext source until it has sent
//                   (backpressure).
//   plaintext       OpenSSL holds at most one decrypted record (16 KiB) that
//                   ReadPlaintext has not returned yet, plus at most one
//                   16 KiB chunk of accepted plaintext it could not encrypt
//                   yet (retried first, on the next write or consume).
//   OpenSSL's own   its record buffers (~17 KiB each way; it reads ahead, so
//                   the read one may hold the start of the next record),
//                   freed when empty (SSL_MODE_RELEASE_BUFFERS); yet one
//                   17 KiB buffer stays on an idle stream (measured with
//                   heaptrack, docs/benchmarks.md).
// So one stream never holds more than ~128 + 192 + 16 + 16 + 34 KiB; a quiet
// stream holds its 4 KiB input, a 17 KiB read buffer and OpenSSL's state,
// and only the state once ReleaseIdleMemory gave the buffers back.
//
// How the caller drives it (all calls on one thread, never blocking):
//   to receive:    recv into RecvSpace() (empty: full, decrypt first), then
//                  Received(n). The space stays put until then. Or, for bytes
//                  from elsewhere: n = FeedCiphertext(bytes); keep bytes[n:].
//   progress:      until handshake_done(): Handshake(). Then ReadPlaintext(buf)
//                  until it returns kNeedMore (or kClosed / kError).
//   to send:       PendingCiphertext() is a view into the stream's own buffer:
//                  send from it directly, then ConsumeCiphertext(sent). The
//                  view stays valid and unchanged until consumed, whatever
//                  else is called meanwhile (an io_uring send may be in flight).
//                  Check after every call: the handshake, reads and errors
//                  (alerts) produce ciphertext too.
//   plaintext out: n = WritePlaintext(data); n < data.size() means "send
//                  first, then write the rest".
//   kNeedMore from Handshake/ReadPlaintext means "more ciphertext from the
//                  peer" or, when ciphertext is pending, "send first": after
//                  ConsumeCiphertext, call it again before waiting on recv.
//   peer closed:   FeedEof(); the next read reports kError (kTruncated) or,
//                  after a close_notify, kClosed.
//   end:           Shutdown() queues close_notify; send it, then close.
// After kError nothing more is accepted; PendingCiphertext may still hold the
// alert that tells the peer why: send it before closing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "userspace/common/openssl_ptr.h"
#include "userspace/common/status.h"
#include "userspace/tls/ciphertext_buffers.h"
#include "userspace/tls/tls_error.h"

namespace egressd::tls {

enum class TlsIo {
  kOk,        // done (handshake, shutdown) or bytes returned (read)
  kNeedMore,  // needs ciphertext from the peer, or room to send: feed / send, then call again
  kClosed,    // the peer sent close_notify: no more plaintext will come
  kError,     // error() says why; the stream is dead
};

struct TlsRead {
  TlsIo status;
  size_t bytes;  // > 0 only with kOk
};

// What was negotiated, for logs.
struct TlsSessionInfo {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS_AES_256_GCM_SHA384"
  std::string alpn;     // "http/1.1", or "" when none was negotiated
  std::string sni;      // server side: the name the client sent; client side: the name sent
  bool resumed = false;
};

class TlsStream {
 public:
  static constexpr size_t kCiphertextInCapacity = CiphertextBuffers::kInLarge;
  static constexpr size_t kCiphertextOutCapacity = CiphertextBuffers::kOutCapacity;
  // Plaintext per SSL_write: one record.
  static constexpr size_t kMaxWriteChunk = 16 * 1024;
  // Free ciphertext room needed before a new record is written: the largest
  // TLS 1.2 record (2^14 + 2048 + 5) plus headroom for a queued alert.
  static constexpr size_t kRecordRoom = 16 * 1024 + 2048 + 5 + 512;

  // Wraps `ssl` (configured, not started) in a BIO of ours and sets it to accept
  // (kServer) or connect (kClient). The contexts call this; tests wrap their
  // own SSL objects to play the peer.
  static StatusOr<TlsStream> Create(SslPtr ssl, TlsRole role);

  TlsStream(TlsStream&&) noexcept = default;
  TlsStream& operator=(TlsStream&&) noexcept = default;
  ~TlsStream() = default;

  // Ciphertext received from the peer. Returns how many bytes were taken
  // (fewer when the input buffer is full: drive the stream, then feed the
  // rest); 0 after an error or FeedEof.
  size_t FeedCiphertext(std::span<const uint8_t> bytes);
  // Where the next recv from the peer lands (empty: the input is full, or
  // the end was fed): call only while no recv into an earlier space is in
  // flight. Then Received(bytes that recv returned).
  std::span<uint8_t> RecvSpace();
  void Received(size_t n) { buffers_->Received(n); }
  // Ciphertext received and not decrypted yet.
  size_t ciphertext_in_bytes() const { return buffers_->in_bytes(); }
  // The peer closed its sending side (recv returned 0).
  void FeedEof();

  // Advances the handshake. kOk once it is done (then handshake_done()).
  TlsIo Handshake();
  // Decrypted bytes into `out` (non-empty). Drives the handshake too.
  TlsRead ReadPlaintext(std::span<uint8_t> out);
  // Encrypts what fits; returns the bytes taken (0 before the handshake is
  // done, after an error or Shutdown, or while the output buffer is full).
  size_t WritePlaintext(std::span<const uint8_t> data);
  // Queues close_notify (once). kNeedMore: no room yet; it is queued when
  // ciphertext is consumed. A stream that failed or never finished its
  // handshake sends nothing.
  TlsIo Shutdown();

  // Ciphertext to send: a contiguous view into the stream's buffer (when the
  // buffer wraps, the rest shows up after ConsumeCiphertext).
  std::span<const uint8_t> PendingCiphertext() const;
  size_t pending_ciphertext_bytes() const;
  // `n` bytes of the view were sent. Retries a write or shutdown that waited for room.
  void ConsumeCiphertext(size_t n);

  TlsRole role() const { return role_; }
  bool handshake_done() const { return handshake_done_; }
  bool failed() const { return error_.kind != TlsErrorKind::kNone; }
  bool peer_closed() const { return peer_closed_; }  // close_notify received
  const TlsError& error() const { return error_; }
  TlsSessionInfo info() const;
  // The handshake resumed a session (no certificate was sent or verified).
  bool resumed() const;

  // Nothing in flight either way: the handshake done, no ciphertext waiting
  // to be read or sent, no record (or a record's header) or write retry
  // OpenSSL holds, no close started.
  bool Quiet() const;
  // For a stream that stays Quiet a while (a parked connection): gives back
  // the empty input queue and OpenSSL's record buffers (~17 KiB each), which
  // the next receive and read take again. Not while a receive is in flight.
  void ReleaseIdleMemory();

  // Bytes of ciphertext queues allocated now (tests).
  size_t ciphertext_buffers_allocated() const;

  // For inspection (tests, logs); never do I/O through it.
  SSL* native_handle() const { return ssl_.get(); }

 private:
  TlsStream(std::unique_ptr<CiphertextBuffers> buffers, SslPtr ssl, TlsRole role)
      : buffers_(std::move(buffers)), ssl_(std::move(ssl)), role_(role) {}
  TlsIo Fail(int ret);  // classifies a failed SSL call: kNeedMore or kError
  size_t OutRoom() const;
  bool FlushWriteRetry();  // true when nothing is left to retry
  void TryShutdown();

  std::unique_ptr<CiphertextBuffers> buffers_;  // the SSL's BIO points here: a stable address
  SslPtr ssl_;                                  // owns the BIO; freed before buffers_
  TlsRole role_;
  bool handshake_done_ = false;
  bool peer_closed_ = false;
  bool eof_fed_ = false;
  bool shutdown_wanted_ = false;
  bool shutdown_sent_ = false;
  TlsError error_;
  std::vector<uint8_t> write_retry_;  // a chunk SSL_write took but could not finish (WANT_WRITE)
};

}  // namespace egressd::tls
