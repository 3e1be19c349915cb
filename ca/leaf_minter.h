// Leaf certificates for the names a sandbox connects to, signed by its CA.
//
// A leaf is for one exact name (no wildcard): a DNS name gets a dNSName SAN,
// an IPv4/IPv6 literal an iPAddress SAN. ECDSA P-256, EKU serverAuth,
// keyUsage digitalSignature, basicConstraints CA:FALSE, authorityKeyIdentifier
// of the CA, a random 128-bit serial, CN = the name when it fits 64
// characters (clients match the SAN; a longer name gets an empty subject and
// a critical SAN, as RFC 5280 asks).
//
// Validity: notBefore an hour in the past (as mitmproxy does: clients whose
// clock is a little behind), notAfter 4 days on (never past the CA's). Short,
// since a leaf costs ~50 µs to mint again; LeafCache re-mints at half-life,
// so a cached leaf always has two days left.
//
// Cost: all the leaves of a sandbox share one key pair, generated with the
// minter and held as a legacy EC_KEY: X509_set_pubkey then encodes it
// without going through OpenSSL 3's encoder, which is what makes a mint
// ~50 µs instead of 250-500 µs (docs/benchmarks.md, tools/bench/leaf_mint_bench).
// The constant extensions are built once. The key stays in daemon memory.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ca/sandbox_ca.h"
#include "userspace/common/openssl_ptr.h"
#include "userspace/common/status.h"

namespace egressd::ca {

// One minted leaf: its certificate and the sandbox's leaf key. Immutable;
// the pointers are borrowed (SSL_use_certificate / SSL_use_PrivateKey take
// references of their own), valid as long as the Leaf.
class Leaf {
 public:
  Leaf(X509Ptr cert, EvpPkeyPtr key, std::string name, time_t refresh_at)
      : cert_(std::move(cert)),
        key_(std::move(key)),
        name_(std::move(name)),
        refresh_at_(refresh_at) {}
  X509* cert() const { return cert_.get(); }
  EVP_PKEY* key() const { return key_.get(); }
  const std::string& name() const { return name_; }  // lowercase, as in its SAN
  // Past this time a cache mints it again (half of its validity is gone).
  time_t refresh_at() const { return refresh_at_; }

 private:
  X509Ptr cert_;
  EvpPkeyPtr key_;
  std::string name_;
  time_t refresh_at_;
};

class LeafMinter {
 public:
  static constexpr long kBackdateSeconds = 3600;
  static constexpr long kValiditySeconds = 4L * 86400;

  // Generates the sandbox's leaf key (call off the data path).
  static StatusOr<std::shared_ptr<const LeafMinter>> Create(std::shared_ptr<const SandboxCa> ca);

  // The name as a leaf is keyed and issued: lowercase, one trailing dot
  // dropped, brackets of an IPv6 literal dropped. Errors for anything but a
  // host name (letters, digits, '-', '_', '.'; at most 253 characters) or
  // an IP literal: no wildcard, no empty label.
  static StatusOr<std::string> CanonicalName(std::string_view name);

  // A new leaf for `name` (see CanonicalName). Thread-safe.
  StatusOr<std::shared_ptr<const Leaf>> Mint(std::string_view name,
                                             time_t now = time(nullptr)) const;

  const SandboxCa& ca() const { return *ca_; }

 private:
  LeafMinter() = default;

  std::shared_ptr<const SandboxCa> ca_;
  EvpPkeyPtr leaf_key_;                        // legacy EC_KEY inside: see above
  std::vector<X509ExtensionPtr> common_exts_;  // the same in every leaf
};

}  // namespace egressd::ca
