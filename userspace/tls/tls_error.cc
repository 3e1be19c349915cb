#include "userspace/tls/tls_error.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "userspace/common/openssl_errors.h"
#include "userspace/tls/verify_reason.h"

namespace egressd::tls {
namespace {

// The name or address the client's certificate check was for.
std::string ExpectedPeer(SSL* ssl) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (const char* host = X509_VERIFY_PARAM_get0_host(param, 0)) return host;
  if (char* ip = X509_VERIFY_PARAM_get1_ip_asc(param)) {
    std::string out(ip);  // IPv6 in full ("0:0:0:0:0:0:0:1"): shorten it as people write it
    OPENSSL_free(ip);
    in6_addr v6;
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET6, out.c_str(), &v6) == 1 &&
        inet_ntop(AF_INET6, &v6, text, sizeof text) != nullptr) {
      out = text;
    }
    return out;
  }
  return "the expected host";
}

TlsError Make(TlsErrorKind kind, std::string reason, std::string detail) {
  TlsError e;
  e.kind = kind;
  e.reason = std::move(reason);
  e.detail = std::move(detail);
  return e;
}

bool IsVersionTooOld(int reason) {
  return reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_VERSION_TOO_LOW ||
         reason == SSL_AD_REASON_OFFSET + SSL_AD_PROTOCOL_VERSION;
}

bool IsNotTls(int reason) {
  return reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
         reason == SSL_R_HTTPS_PROXY_REQUEST || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
         reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_RECORD_LENGTH_MISMATCH;
}

}  // namespace

const char* TlsErrorKindName(TlsErrorKind kind) {
  switch (kind) {
    case TlsErrorKind::kNone:
      return "none";
    case TlsErrorKind::kProtocol:
      return "protocol";
    case TlsErrorKind::kNoApplicationProtocol:
      return "no_application_protocol";
    case TlsErrorKind::kCertificate:
      return "certificate";
    case TlsErrorKind::kTruncated:
      return "truncated";
    case TlsErrorKind::kInternal:
      return "internal";
  }
  return "unknown";
}

TlsError ClassifyTlsFailure(SSL* ssl, int ssl_error, TlsRole role, bool handshake_done) {
  OpensslErrors errs = TakeOpensslErrors();
  const bool in_handshake = !handshake_done;

  // A failed certificate check aborts the handshake with a generic SSL error;
  // the verify result says what was wrong.
  long verify = SSL_get_verify_result(ssl);
  if (role == TlsRole::kClient && verify != X509_V_OK) {
    TlsError e = Make(TlsErrorKind::kCertificate, DescribeVerifyFailure(verify, ExpectedPeer(ssl)),
                      std::move(errs.text));
    e.verify_result = verify;
    return e;
  }

  if (ssl_error == SSL_ERROR_SYSCALL && errs.text.empty()) {
    // The memory BIO reported end of input: FeedEof without close_notify.
    return Make(TlsErrorKind::kTruncated,
                in_handshake ? "connection closed during the TLS handshake"
                             : "connection closed without TLS close_notify (truncated)",
                "");
  }
  if (ssl_error != SSL_ERROR_SSL && ssl_error != SSL_ERROR_SYSCALL) {
    return Make(TlsErrorKind::kInternal, fmt::format("unexpected TLS state {}", ssl_error),
                std::move(errs.text));
  }

  const int reason = errs.lib == ERR_LIB_SSL ? errs.reason : 0;
  if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    return Make(TlsErrorKind::kTruncated,
                in_handshake ? "connection closed during the TLS handshake"
                             : "connection closed without TLS close_notify (truncated)",
                std::move(errs.text));
  }
  if (reason == SSL_R_NO_APPLICATION_PROTOCOL) {
    return Make(TlsErrorKind::kNoApplicationProtocol,
                "the client offered ALPN without http/1.1 (HTTP/2 is not interceptable yet)",
                std::move(errs.text));
  }
  if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
    const int alert = reason - SSL_AD_REASON_OFFSET;
    TlsError e;
    if (alert == SSL_AD_NO_APPLICATION_PROTOCOL) {
      e = Make(TlsErrorKind::kNoApplicationProtocol,
               "the peer refused ALPN http/1.1 (alert no_application_protocol)",
               std::move(errs.text));
    } else if (alert == SSL_AD_PROTOCOL_VERSION) {
      e = Make(TlsErrorKind::kProtocol, "protocol version too old (TLS 1.2 is the minimum)",
               std::move(errs.text));
    } else {
      e = Make(TlsErrorKind::kProtocol,
               fmt::format("the peer sent the TLS alert \"{}\" ({})",
                           SSL_alert_desc_string_long(alert), alert),
               std::move(errs.text));
    }
    e.peer_alert = alert;
    return e;
  }
  if (IsVersionTooOld(reason)) {
    return Make(TlsErrorKind::kProtocol, "protocol version too old (TLS 1.2 is the minimum)",
                std::move(errs.text));
  }
  if (IsNotTls(reason)) {
    return Make(TlsErrorKind::kProtocol, "not TLS (or a TLS version before 1.0)",
                std::move(errs.text));
  }
  if (reason == SSL_R_NO_SHARED_CIPHER || reason == SSL_R_NO_SHARED_GROUPS ||
      reason == SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM || reason == SSL_R_NO_CIPHERS_AVAILABLE) {
    return Make(TlsErrorKind::kProtocol, "no cipher suite, group or signature algorithm in common",
                std::move(errs.text));
  }
  const char* what =
      errs.reason != 0 ? ERR_reason_error_string(ERR_PACK(errs.lib, 0, errs.reason)) : nullptr;
  return Make(TlsErrorKind::kProtocol,
              fmt::format("{} failed: {}", in_handshake ? "TLS handshake" : "TLS",
                          what ? what : "no reason given by OpenSSL"),
              std::move(errs.text));
}

}  // namespace egressd::tls
