// The sandbox-facing side of interception: egressd as the TLS server the
// sandbox connected to, with a leaf (from ca/) for the name the sandbox asked for.
//
// One context for the whole daemon, built at startup and shared read-only by
// every worker. It has no certificate: each stream gets the leaf for its SNI
// before the handshake (the proxy knows the SNI from its own ClientHello
// parser, so no SNI callback runs).
//
// TLS 1.2 and 1.3 (tls_config.h). ALPN: http/1.1 is chosen when the client
// offers it; a client that offers ALPN without it (h2 only) gets the alert
// no_application_protocol and the stream fails with kNoApplicationProtocol;
// no ALPN is HTTP/1.1.
//
// No session resumption on this side (no tickets, no session cache): a ticket
// key would be shared by every sandbox served by the context, letting one
// sandbox's tickets be presented in another's connection, and each
// connection's leaf is chosen afresh anyway. A full server handshake costs
// ~200 µs of CPU (design.md); per-sandbox ticket keys are the way to add it.
#pragma once

#include <openssl/ssl.h>

#include <memory>

#include "userspace/common/openssl_ptr.h"
#include "userspace/common/status.h"
#include "userspace/tls/tls_stream.h"

namespace egressd::tls {

class TlsServerContext {
 public:
  static StatusOr<std::shared_ptr<const TlsServerContext>> Create();

  // A server stream presenting `leaf` (with its private key `key`; borrowed:
  // the stream takes references of its own). Cheap: no key or file work.
  StatusOr<TlsStream> NewStream(X509* leaf, EVP_PKEY* key) const;

 private:
  explicit TlsServerContext(SslCtxPtr ctx) : ctx_(std::move(ctx)) {}
  SslCtxPtr ctx_;
};

}  // namespace egressd::tls
