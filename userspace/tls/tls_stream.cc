#include "userspace/tls/tls_stream.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <algorithm>
#include <string_view>

#include "userspace/common/openssl_errors.h"

namespace egressd::tls {
namespace {

// OpenSSL 3.0.14: SSL_free_buffers no longer frees a buffer in use.
constexpr unsigned long kFreeBuffersFixedIn = 0x300000e0UL;

}  // namespace

StatusOr<TlsStream> TlsStream::Create(SslPtr ssl, TlsRole role) {
  if (!ssl) return EGRESSD_ERROR("TLS stream: no SSL object");
  auto buffers = std::make_unique<CiphertextBuffers>();
  BIO* bio = CiphertextBuffers::NewBio(buffers.get());
  if (!bio) return EGRESSD_ERROR("TLS stream: cannot allocate its BIO: {}", OpensslErrorText());
  SSL_set_bio(ssl.get(), bio, bio);  // the SSL owns it; it reads and writes `buffers`
  SSL_set_mode(ssl.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
  // Read-ahead: the SSL takes all the ciphertext its record buffer holds in
  // one BIO read instead of a header and then a body (half the calls, and a
  // buffer that holds the next record's start is not freed and allocated
  // again for it).
  SSL_set_read_ahead(ssl.get(), 1);
  if (role == TlsRole::kServer) {
    SSL_set_accept_state(ssl.get());
  } else {
    SSL_set_connect_state(ssl.get());
  }
  return TlsStream(std::move(buffers), std::move(ssl), role);
}

size_t TlsStream::FeedCiphertext(std::span<const uint8_t> bytes) {
  if (failed() || eof_fed_ || bytes.empty()) return 0;
  return buffers_->Feed(bytes);
}

std::span<uint8_t> TlsStream::RecvSpace() {
  if (failed() || eof_fed_) return {};
  return buffers_->RecvSpace();
}

void TlsStream::FeedEof() {
  if (eof_fed_) return;
  eof_fed_ = true;
  buffers_->FeedEof();
}

TlsIo TlsStream::Fail(int ret) {
  const int e = SSL_get_error(ssl_.get(), ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return TlsIo::kNeedMore;
  }
  if (e == SSL_ERROR_ZERO_RETURN && handshake_done_) {
    ERR_clear_error();
    peer_closed_ = true;
    return TlsIo::kClosed;
  }
  if (e == SSL_ERROR_ZERO_RETURN) {
    // close_notify before the handshake finished: no session was ever set up.
    ERR_clear_error();
    error_.kind = TlsErrorKind::kProtocol;
    error_.reason = "the peer closed the connection during the TLS handshake (close_notify)";
    error_.peer_alert = SSL_AD_CLOSE_NOTIFY;
    return TlsIo::kError;
  }
  error_ = ClassifyTlsFailure(ssl_.get(), e, role_, handshake_done_);
  write_retry_.clear();
  return TlsIo::kError;
}

TlsIo TlsStream::Handshake() {
  if (failed()) return TlsIo::kError;
  if (handshake_done_) return TlsIo::kOk;
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_.get());
  if (r == 1) {
    handshake_done_ = true;
    return TlsIo::kOk;
  }
  return Fail(r);
}

TlsRead TlsStream::ReadPlaintext(std::span<uint8_t> out) {
  if (failed()) return {TlsIo::kError, 0};
  if (peer_closed_) return {TlsIo::kClosed, 0};
  if (out.empty()) return {TlsIo::kNeedMore, 0};
  ERR_clear_error();
  size_t n = 0;
  const int r = SSL_read_ex(ssl_.get(), out.data(), out.size(), &n);
  handshake_done_ = handshake_done_ || SSL_is_init_finished(ssl_.get());
  if (r == 1) return {TlsIo::kOk, n};
  return {Fail(r), 0};
}

size_t TlsStream::OutRoom() const {
  return buffers_->OutRoom();
}

bool TlsStream::FlushWriteRetry() {
  while (!write_retry_.empty()) {
    ERR_clear_error();
    size_t n = 0;
    const int r = SSL_write_ex(ssl_.get(), write_retry_.data(), write_retry_.size(), &n);
    if (r != 1) {
      Fail(r);  // kNeedMore: still no room; kError: failed() from now on
      return false;
    }
    write_retry_.erase(write_retry_.begin(), write_retry_.begin() + static_cast<ptrdiff_t>(n));
  }
  return true;
}

size_t TlsStream::WritePlaintext(std::span<const uint8_t> data) {
  if (failed() || !handshake_done_ || shutdown_wanted_) return 0;
  if (!FlushWriteRetry()) return 0;
  size_t consumed = 0;
  while (consumed < data.size() && OutRoom() >= kRecordRoom) {
    const size_t chunk = std::min(kMaxWriteChunk, data.size() - consumed);
    ERR_clear_error();
    size_t n = 0;
    const int r = SSL_write_ex(ssl_.get(), data.data() + consumed, chunk, &n);
    if (r == 1) {
      consumed += n;
      continue;
    }
    if (Fail(r) == TlsIo::kNeedMore) {
      // OpenSSL took part of the record and must be called again with the
      // same bytes: keep them, and count them as taken.
      write_retry_.assign(data.begin() + static_cast<ptrdiff_t>(consumed),
                          data.begin() + static_cast<ptrdiff_t>(consumed + chunk));
      consumed += chunk;
    }
    break;
  }
  return consumed;
}

void TlsStream::TryShutdown() {
  if (!shutdown_wanted_ || shutdown_sent_ || failed()) return;
  if (!handshake_done_) {
    shutdown_sent_ = true;  // nothing to close politely
    return;
  }
  if (!FlushWriteRetry()) return;  // close_notify goes after the data
  ERR_clear_error();
  const int r = SSL_shutdown(ssl_.get());
  if (r >= 0) {
    shutdown_sent_ = true;  // 0: sent, the peer's not seen yet; 1: both sent
    return;
  }
  Fail(r);  // kNeedMore: retried when ciphertext is consumed
}

TlsIo TlsStream::Shutdown() {
  shutdown_wanted_ = true;
  TryShutdown();
  if (failed()) return TlsIo::kError;
  return shutdown_sent_ ? TlsIo::kOk : TlsIo::kNeedMore;
}

std::span<const uint8_t> TlsStream::PendingCiphertext() const {
  return buffers_->Pending();
}

size_t TlsStream::pending_ciphertext_bytes() const {
  return buffers_->out_bytes();
}

void TlsStream::ConsumeCiphertext(size_t n) {
  buffers_->Consume(n);
  if (failed()) return;
  if (!write_retry_.empty()) FlushWriteRetry();
  TryShutdown();
}

bool TlsStream::resumed() const {
  return SSL_session_reused(ssl_.get()) == 1;
}

size_t TlsStream::ciphertext_buffers_allocated() const {
  return buffers_->allocated();
}

bool TlsStream::Quiet() const {
  // SSL_has_pending misses a record whose header was read and whose body has
  // not come yet ("RB"): its header sits in OpenSSL's read buffer.
  return handshake_done_ && !failed() && !shutdown_wanted_ && write_retry_.empty() &&
         buffers_->in_bytes() == 0 && buffers_->out_bytes() == 0 &&
         SSL_has_pending(ssl_.get()) == 0 &&
         std::string_view(SSL_rstate_string(ssl_.get())) != "RB";
}

void TlsStream::ReleaseIdleMemory() {
  if (!Quiet()) return;
  buffers_->ReleaseEmptyInput();
  // Before 3.0.14 SSL_free_buffers could free a read buffer still in use
  // (CVE-2024-4741); Quiet already excludes that case, and older libraries
  // (the one loaded, not the one built against) keep their buffers anyway.
  // It refuses (0) while a buffer holds bytes: then they stay.
  if (OpenSSL_version_num() >= kFreeBuffersFixedIn) SSL_free_buffers(ssl_.get());
}

TlsSessionInfo TlsStream::info() const {
  TlsSessionInfo out;
  SSL* ssl = ssl_.get();
  out.version = SSL_get_version(ssl);
  if (const char* cipher = SSL_get_cipher_name(ssl)) out.cipher = cipher;
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn) out.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) out.sni = sni;
  out.resumed = resumed();
  return out;
}

}  // namespace egressd::tls
