// The protocol settings both sides share, written out rather than taken from
// the host's OpenSSL configuration. Debian 12's /etc/ssl/openssl.cnf has no
// system_default section, so OpenSSL's compiled defaults would apply
// (security level 1, TLS 1.0 allowed in principle); another distribution's
// file could change them either way. Set explicitly on every context:
//   - TLS 1.2 minimum, 1.3 maximum;
//   - security level 2: RSA/DH keys of 2048 bits or more, ECC 224 or more,
//     no SHA-1 signatures in certificates or handshakes;
//   - TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20-Poly1305 first, then
//     ECDHE with AES-CBC (some older servers); no static RSA, no 3DES or RC4;
//   - TLS 1.3 suites: the three standard AEAD ones;
//   - groups X25519, P-256, P-384;
//   - no renegotiation, no compression.
#pragma once

#include <openssl/ssl.h>

#include "userspace/common/status.h"

namespace egressd::tls {

inline constexpr int kSecurityLevel = 2;
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:"
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA";
inline constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
inline constexpr const char* kGroups = "X25519:P-256:P-384";

// Applies the settings above to `ctx`.
Status ApplyProtocolSettings(SSL_CTX* ctx);

}  // namespace egressd::tls
