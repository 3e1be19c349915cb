// Checks the CA tests share: verifying a leaf the way a TLS client would.
#pragma once

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <string>

#include "userspace/common/openssl_ptr.h"

namespace egressd::ca::testing {

// X509_verify_cert of `leaf` under `root` alone, for TLS server use, with
// the host (or IP) check a client makes; "" when it verifies, else why not.
inline std::string VerifyLeaf(X509* leaf, X509* root, const std::string& host, bool is_ip) {
  std::unique_ptr<X509_STORE, OpensslDeleter<X509_STORE, X509_STORE_free>> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, OpensslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new());
  X509_STORE_add_cert(store.get(), root);
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  if (is_ip)
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  else
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  int ok = X509_verify_cert(ctx.get());
  std::string why =
      ok == 1 ? "" : X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
  ERR_clear_error();
  return why;
}

}  // namespace egressd::ca::testing
