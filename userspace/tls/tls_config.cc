#include "userspace/tls/tls_config.h"

#include "userspace/common/openssl_errors.h"

namespace egressd::tls {

Status ApplyProtocolSettings(SSL_CTX* ctx) {
  SSL_CTX_set_security_level(ctx, kSecurityLevel);
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return EGRESSD_ERROR("TLS versions: {}", OpensslErrorText());
  }
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1) {
    return EGRESSD_ERROR("TLS cipher suites: {}", OpensslErrorText());
  }
  if (SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return EGRESSD_ERROR("TLS groups: {}", OpensslErrorText());
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  return {};
}

}  // namespace egressd::tls
