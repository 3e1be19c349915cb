// The upstream-facing side of interception: egressd as the TLS client of the
// origin. The upstream is verified, always; there is no switch to turn it off.
//
//   - chain: to the system trust store (SSL_CTX_set_default_verify_paths)
//     plus the roots of `extra_roots_file` (--upstream-ca: private PKI, tests);
//   - name: the host must be in a dNSName SAN (wildcards only as a whole
//     left-most label; the subject CN is never used), an IP literal in an
//     iPAddress SAN;
//   - purpose: EKU must allow serverAuth; issuers must be CAs;
//   - strength: security level 2 (RSA >= 2048 bits, no SHA-1), TLS 1.2
//     minimum (tls_config.h);
//   - SNI sent for names, never for IP literals; ALPN offers http/1.1.
// Not checked: revocation (no OCSP or CRL fetching), Certificate Transparency.
// A failure is a stream error of kind kCertificate (or kProtocol) whose
// reason names it: "certificate has expired", "hostname mismatch (...)".
//
// Sessions are resumed through an UpstreamSessionCache keyed by (sandbox,
// host, port, ALPN); new sessions (TLS 1.3 tickets arrive after the
// handshake, while the stream reads) are stored as they come.
//
// Built once at startup (file reads happen here) and shared read-only by
// every worker; NewStream does no file or key work. Streams may outlive the
// context.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "userspace/common/openssl_ptr.h"
#include "userspace/common/status.h"
#include "userspace/tls/tls_stream.h"
#include "userspace/tls/upstream_session_cache.h"

namespace egressd::tls {

struct TlsClientOptions {
  // PEM file of extra trusted roots (--upstream-ca); "" for none. A file that
  // cannot be read or holds no certificate is an error at Create.
  std::string extra_roots_file;
  size_t session_cache_capacity = UpstreamSessionCache::kDefaultCapacity;
};

// Where one upstream connection goes.
struct UpstreamTarget {
  uint64_t sandbox = 0;  // the sandbox's generation: sessions are never shared between sandboxes
  std::string host;      // the name (lowercase, no trailing dot) or an IP literal ("::1", "[::1]")
  uint16_t port = 443;
  // The address connected to (from egressd's resolver), or empty. Given,
  // sessions are kept per address rather than per name: a session is then
  // offered to another name served there only when the certificate it
  // verified is valid for that name (RFC 8446 4.6.1), so a new name at a
  // known address resumes instead of a full handshake.
  std::string address = {};
};

class TlsClientContext {
 public:
  static StatusOr<std::shared_ptr<const TlsClientContext>> Create(const TlsClientOptions& options);

  // A client stream for `target`: SNI, name check, ALPN and a cached session
  // set. Call Handshake() to produce the ClientHello.
  StatusOr<TlsStream> NewStream(const UpstreamTarget& target) const;

  UpstreamSessionCache& sessions() const { return *sessions_; }

 private:
  TlsClientContext(SslCtxPtr ctx, std::shared_ptr<UpstreamSessionCache> sessions)
      : ctx_(std::move(ctx)), sessions_(std::move(sessions)) {}

  SslCtxPtr ctx_;
  std::shared_ptr<UpstreamSessionCache> sessions_;  // also held by each stream's SSL (new tickets)
};

}  // namespace egressd::tls
