// Owners for the OpenSSL objects of the tls/ layer.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

namespace egressd::tls {

template <typename T, void (*Free)(T*)>
struct OpensslDeleter {
  void operator()(T* p) const { Free(p); }
};

using SslPtr = std::unique_ptr<SSL, OpensslDeleter<SSL, SSL_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OpensslDeleter<SSL_CTX, SSL_CTX_free>>;
using SslSessionPtr = std::unique_ptr<SSL_SESSION, OpensslDeleter<SSL_SESSION, SSL_SESSION_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslDeleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, OpensslDeleter<X509, X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpensslDeleter<EVP_PKEY, EVP_PKEY_free>>;

}  // namespace egressd::tls
