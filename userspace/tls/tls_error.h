// Why a TLS stream failed: a kind the caller reacts to, and a reason a human
// reads (it goes into the 502 body and the audit event).
#pragma once

#include <openssl/ssl.h>

#include <string>

namespace egressd::tls {

enum class TlsRole { kServer, kClient };

enum class TlsErrorKind {
  kNone,
  // Malformed or unexpected TLS, no common version/cipher, a fatal alert from
  // the peer, or any other handshake failure.
  kProtocol,
  // Server: the client offered ALPN without http/1.1 (h2 only); the alert
  // no_application_protocol (120) was sent. Client: the server sent that alert.
  // The proxy reports "HTTP/2 is not interceptable yet".
  kNoApplicationProtocol,
  // Client: the upstream's certificate chain or name did not verify.
  kCertificate,
  // The peer closed its side of TCP without close_notify (FeedEof).
  kTruncated,
  // Out of memory, or an OpenSSL state this layer does not expect.
  kInternal,
};

struct TlsError {
  TlsErrorKind kind = TlsErrorKind::kNone;
  std::string reason;      // for humans: "certificate has expired"
  std::string detail;      // OpenSSL's own words, for logs ("" when none)
  int peer_alert = -1;     // the fatal alert the peer sent (RFC 8446 AlertDescription), if any
  long verify_result = 0;  // X509_V_OK, or the X509_V_ERR_* of a kCertificate failure
};

const char* TlsErrorKindName(TlsErrorKind kind);  // "protocol", "certificate", ...

// The error of a failed SSL call (`ssl_error` from SSL_get_error), from the
// SSL's state and this thread's error queue (drained). `handshake_done`: the
// stream had completed its handshake before this call.
TlsError ClassifyTlsFailure(SSL* ssl, int ssl_error, TlsRole role, bool handshake_done);

}  // namespace egressd::tls
