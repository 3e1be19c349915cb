// The certificate helpers of ca/ over OpenSSL, and its error message macro.
// The owners (X509Ptr, ...) and the error-queue drain are shared with
// userspace/tls/: userspace/common/openssl_ptr.h and openssl_errors.h.
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "userspace/common/openssl_errors.h"
#include "userspace/common/openssl_ptr.h"
#include "userspace/common/status.h"

namespace egressd::ca {

// EGRESSD_ERROR with OpenSSL's reasons appended ("no reason given by OpenSSL"
// when the queue is empty). It drains the queue, so every failure path of this
// library leaves no stale error for a later SSL_get_error on the same (proxy
// worker) thread.
#define EGRESSD_OPENSSL_ERROR(what) EGRESSD_ERROR("{}: {}", what, ::egressd::OpensslErrorText())

// A random positive 128-bit serial number (RFC 5280 allows up to 20 octets).
Status SetRandomSerial(X509* cert);

// notBefore = now - backdate_s, notAfter = now + valid_s.
Status SetValidity(X509* cert, time_t now, long backdate_s, long valid_s);

// The certificate as PEM text.
StatusOr<std::string> CertificatePem(X509* cert);

// An extension from its OpenSSL config text ("critical,CA:TRUE,pathlen:0"),
// with `issuer` and `subject` as the context (for key identifiers).
StatusOr<X509ExtensionPtr> MakeExtension(int nid, const char* value, X509* issuer, X509* subject);

}  // namespace egressd::ca
