// The certificate authority of one sandbox instance: unique to it, never
// shared. The sandbox trusts it (egressctl ca, or `run`'s trust bundle), so
// egressd can terminate the TLS the sandbox opens with leaves it signs.
//
// ECDSA P-256, self-signed X.509 v3: basicConstraints critical CA:TRUE
// pathlen:0 (it signs leaves, never another CA), keyUsage critical
// keyCertSign + cRLSign, subjectKeyIdentifier, a random 128-bit serial,
// subject "CN=egressd sandbox CA (<instance>), O=egressd".
//
// Validity: notBefore an hour in the past (sandboxes with a clock a little
// behind), notAfter 10 years on. The CA lives as long as its sandbox (it is
// wiped at detach and a restarted daemon keeps it), and a long-running
// container that installed it must not see it expire under it; the leaves it
// signs are short-lived (leaf_minter.h).
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "userspace/common/openssl_ptr.h"
#include "userspace/common/status.h"

namespace egressd::ca {

class SandboxCa {
 public:
  static constexpr long kBackdateSeconds = 3600;
  static constexpr long kValiditySeconds = 10L * 365 * 86400;

  // A fresh CA for `instance` (named in its subject, printable ASCII, cut to
  // fit the 64 characters of a CN).
  static StatusOr<std::shared_ptr<const SandboxCa>> Create(std::string_view instance,
                                                           time_t now = time(nullptr));
  // A CA saved before (ToPem): the key must match the certificate, which must
  // be a CA with an EC P-256 key. Garbage gives an error, never a half CA.
  static StatusOr<std::shared_ptr<const SandboxCa>> FromPem(std::string_view cert_pem,
                                                            std::string_view key_pem);

  // The certificate (PEM): what `egressctl ca` prints and sandboxes trust.
  const std::string& cert_pem() const { return cert_pem_; }
  // The private key (PKCS#8 PEM, unencrypted). Only for the root-only file
  // in the state dir (userspace/sandbox/ca_store.cc): never logged, never sent.
  StatusOr<std::string> PrivateKeyPem() const;

  // Borrowed; for LeafMinter and tests.
  X509* cert() const { return cert_.get(); }
  EVP_PKEY* key() const { return key_.get(); }

 private:
  SandboxCa(X509Ptr cert, EvpPkeyPtr key, std::string cert_pem)
      : cert_(std::move(cert)), key_(std::move(key)), cert_pem_(std::move(cert_pem)) {}

  X509Ptr cert_;
  EvpPkeyPtr key_;
  std::string cert_pem_;
};

}  // namespace egressd::ca
