// Owners for OpenSSL objects, and OpenSSL's error queue as a message.
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

#include "userspace/common/status.h"

namespace egressd::ca {

template <typename T, void (*Free)(T*)>
struct OpensslDeleter {
  void operator()(T* p) const { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, OpensslDeleter<X509, X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpensslDeleter<EVP_PKEY, EVP_PKEY_free>>;
using X509ExtensionPtr =
    std::unique_ptr<X509_EXTENSION, OpensslDeleter<X509_EXTENSION, X509_EXTENSION_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslDeleter<BIO, BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpensslDeleter<BIGNUM, BN_free>>;
using Asn1IntegerPtr =
    std::unique_ptr<ASN1_INTEGER, OpensslDeleter<ASN1_INTEGER, ASN1_INTEGER_free>>;
using GeneralNamesPtr =
    std::unique_ptr<GENERAL_NAMES, OpensslDeleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

// Drains this thread's OpenSSL error queue into one line ("" when empty).
// Every failure path of this library calls it, so no stale error is left for
// a later SSL_get_error on the same (proxy worker) thread.
std::string TakeOpensslErrors();

// EGRESSD_ERROR with OpenSSL's reasons appended.
#define EGRESSD_OPENSSL_ERROR(what) \
  EGRESSD_ERROR("{}: {}", what, ::egressd::ca::TakeOpensslErrors())

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
