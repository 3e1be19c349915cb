#include "userspace/tls/tls_client_context.h"

#include <arpa/inet.h>
#include <openssl/x509v3.h>

#include <string_view>

#include "userspace/common/openssl_errors.h"
#include "userspace/tls/tls_config.h"

namespace egressd::tls {
namespace {

constexpr unsigned char kAlpnHttp11[] = "\x08http/1.1";
constexpr std::string_view kAlpnName = "http/1.1";
// How a certificate's names are matched: SAN only, whole-label wildcards.
constexpr unsigned kHostFlags =
    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;

// What an SSL needs to store the sessions it receives: the cache (shared, so
// a stream may outlive its context) and its key. Held in the SSL's ex_data,
// freed with the SSL.
struct ResumptionSlot {
  std::shared_ptr<UpstreamSessionCache> cache;
  std::string key;
};

void FreeResumptionSlot(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<ResumptionSlot*>(ptr);
}

int ResumptionSlotIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeResumptionSlot);
  return index;
}

// OpenSSL's new-session callback: a full handshake completed (TLS 1.2) or a
// ticket arrived (TLS 1.3). The cache keeps a copy: `session` stays the
// SSL's current session, which OpenSSL marks non-resumable when the
// connection ends without egressd's close_notify (an upstream that closes
// first, as on `Connection: close`), and that would spoil the cached one.
// Kept as is, that was every connection's last ticket: only one upstream
// handshake in two resumed. (TLS 1.1 and later allow resuming after such an
// end; a TLS 1.3 ticket is valid once delivered.)
int OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* slot = static_cast<ResumptionSlot*>(SSL_get_ex_data(ssl, ResumptionSlotIndex()));
  if (!slot || SSL_SESSION_is_resumable(session) != 1) return 0;
  if (SslSessionPtr copy{SSL_SESSION_dup(session)}) slot->cache->Put(slot->key, std::move(copy));
  return 0;  // OpenSSL's reference stays OpenSSL's
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool IsHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

StatusOr<std::shared_ptr<const TlsClientContext>> TlsClientContext::Create(
    const TlsClientOptions& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return EGRESSD_ERROR("TLS client context: {}", OpensslErrorText());
  EGRESSD_RETURN_IF_ERROR(ApplyProtocolSettings(ctx.get()));
  if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return EGRESSD_ERROR("cannot load the system trust store: {}", OpensslErrorText());
  }
  if (!options.extra_roots_file.empty() &&
      SSL_CTX_load_verify_locations(ctx.get(), options.extra_roots_file.c_str(), nullptr) != 1) {
    return EGRESSD_ERROR("--upstream-ca {}: no PEM certificate could be read from it ({})",
                         options.extra_roots_file, OpensslErrorText());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), OnNewSession);
  if (ResumptionSlotIndex() < 0) {
    return EGRESSD_ERROR("TLS client context: no ex_data index: {}", OpensslErrorText());
  }
  auto sessions = std::make_shared<UpstreamSessionCache>(options.session_cache_capacity);
  return std::shared_ptr<const TlsClientContext>(
      new TlsClientContext(std::move(ctx), std::move(sessions)));
}

StatusOr<TlsStream> TlsClientContext::NewStream(const UpstreamTarget& target) const {
  std::string host = target.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const bool ip = IsIpLiteral(host);
  if (!ip && !IsHostName(host)) {
    return EGRESSD_ERROR("TLS upstream: not a host name or IP address: \"{}\"", target.host);
  }
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return EGRESSD_ERROR("TLS client stream: {}", OpensslErrorText());
  SSL_set_hostflags(ssl.get(), kHostFlags);
  bool ok = true;
  if (ip) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), host.c_str()) == 1;
  } else {
    ok = SSL_set1_host(ssl.get(), host.c_str()) == 1 &&
         SSL_set_tlsext_host_name(ssl.get(), host.c_str()) == 1;
  }
  // SSL_set_alpn_protos returns 0 on success.
  ok = ok && SSL_set_alpn_protos(ssl.get(), kAlpnHttp11, sizeof kAlpnHttp11 - 1) == 0;
  if (!ok) return EGRESSD_ERROR("TLS client stream for {}: {}", host, OpensslErrorText());

  auto slot = std::make_unique<ResumptionSlot>();
  slot->cache = sessions_;
  // Per address when known: the names served there share sessions, each
  // offered only to a name its verified certificate is valid for (a resumed
  // handshake checks no certificate, so this check is the hostname check).
  slot->key = UpstreamSessionCache::Key(
      target.sandbox, target.address.empty() ? host : "@" + target.address, target.port, kAlpnName);
  auto fits = [&](SSL_SESSION* session) {
    X509* peer = SSL_SESSION_get0_peer(session);
    if (!peer) return false;
    return ip ? X509_check_ip_asc(peer, host.c_str(), 0) == 1
              : X509_check_host(peer, host.c_str(), host.size(), kHostFlags, nullptr) == 1;
  };
  if (SslSessionPtr session = sessions_->Take(slot->key, fits)) {
    SSL_set_session(ssl.get(), session.get());  // takes a reference of its own
  }
  if (SSL_set_ex_data(ssl.get(), ResumptionSlotIndex(), slot.get()) != 1) {
    return EGRESSD_ERROR("TLS client stream: {}", OpensslErrorText());
  }
  slot.release();  // freed with the SSL (FreeResumptionSlot)
  return TlsStream::Create(std::move(ssl), TlsRole::kClient);
}

}  // namespace egressd::tls
