#include "userspace/tls/tls_server_context.h"

#include <string_view>

#include "userspace/common/openssl_errors.h"
#include "userspace/tls/tls_config.h"

namespace egressd::tls {
namespace {

constexpr std::string_view kHttp11 = "http/1.1";

// What a sandbox-side handshake is signed with: the leaves are ECDSA P-256
// (ca/leaf_minter.h), which TLS 1.3 signs only as ecdsa_secp256r1_sha256,
// TLS 1.2 as ECDSA with SHA-256 or a longer hash. Offering nothing else
// spares OpenSSL trying every other scheme the client lists against the key
// on each handshake.
constexpr const char* kLeafSignatureAlgorithms = "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512";

// ALPN: http/1.1 when offered; any other offer is refused with the alert
// no_application_protocol (SSL_TLSEXT_ERR_ALERT_FATAL sends it).
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned int i = 0;
  while (i < inlen) {
    const unsigned int len = in[i];
    if (len == 0 || i + 1 + len > inlen) break;  // malformed list (OpenSSL checks it first)
    std::string_view proto(reinterpret_cast<const char*>(in + i + 1), len);
    if (proto == kHttp11) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

StatusOr<std::shared_ptr<const TlsServerContext>> TlsServerContext::Create() {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return EGRESSD_ERROR("TLS server context: {}", OpensslErrorText());
  EGRESSD_RETURN_IF_ERROR(ApplyProtocolSettings(ctx.get()));
  if (SSL_CTX_set1_sigalgs_list(ctx.get(), kLeafSignatureAlgorithms) != 1)
    return EGRESSD_ERROR("TLS server signature algorithms: {}", OpensslErrorText());
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_alpn_select_cb(ctx.get(), SelectAlpn, nullptr);
  // The leaf alone goes out: the sandbox has its CA as a trust anchor. Without
  // this OpenSSL builds (and checks) a chain from the context's store on
  // every handshake, a third of a handshake's CPU (tools/bench, BENCH_TLS=1).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_NO_AUTO_CHAIN);
  return std::shared_ptr<const TlsServerContext>(new TlsServerContext(std::move(ctx)));
}

StatusOr<TlsStream> TlsServerContext::NewStream(X509* leaf, EVP_PKEY* key) const {
  if (!leaf || !key) return EGRESSD_ERROR("TLS server stream: no leaf certificate or key");
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return EGRESSD_ERROR("TLS server stream: {}", OpensslErrorText());
  if (SSL_use_certificate(ssl.get(), leaf) != 1 || SSL_use_PrivateKey(ssl.get(), key) != 1) {
    return EGRESSD_ERROR("TLS server stream: leaf refused: {}", OpensslErrorText());
  }
  return TlsStream::Create(std::move(ssl), TlsRole::kServer);
}

}  // namespace egressd::tls
