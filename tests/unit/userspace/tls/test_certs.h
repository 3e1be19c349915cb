// Test-only certificate factory: keys, CAs and leaves made in memory with
// OpenSSL, good or bad in exactly the way a test asks for, plus a raw
// OpenSSL server context to present them. Aborts the test on OpenSSL failure.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

#include "userspace/common/openssl_ptr.h"

namespace egressd::tls::testing {

enum class KeyKind { kEcP256, kRsa1024, kRsa2048 };
enum class Eku { kServerAuth, kClientAuth, kNone };

struct CertSpec {
  std::string cn = "egressd test";
  std::vector<std::string> dns;  // dNSName SANs
  std::vector<std::string> ips;  // iPAddress SANs
  long not_before = -3600;       // seconds from now
  long not_after = 86400;
  bool ca = false;  // basicConstraints CA:TRUE, keyCertSign (else CA:FALSE, digitalSignature)
  KeyKind key = KeyKind::kEcP256;
  const EVP_MD* md = nullptr;  // signature digest; null = SHA-256
  Eku eku = Eku::kServerAuth;  // for non-CA certificates
};

struct KeyCert {
  X509Ptr cert;
  EvpPkeyPtr key;
};

// A certificate for `spec`, signed by `issuer` (null: self-signed).
KeyCert MakeCert(const CertSpec& spec, const KeyCert* issuer);

// A root CA, and a leaf for `dns` signed by it.
KeyCert MakeRoot(const std::string& cn = "egressd test root");
KeyCert MakeLeaf(const KeyCert& issuer, const std::string& dns);

std::string Pem(X509* cert);

// A file that is removed when this goes out of scope.
class TempFile {
 public:
  explicit TempFile(const std::string& contents);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A plain OpenSSL server context (not egressd's) presenting `leaf` plus
// `chain`, at security level 0 so it can offer whatever a test needs (RSA-1024,
// SHA-1, TLS 1.0). Versions: 0 = OpenSSL's bounds. Session tickets on.
struct TestServerOptions {
  int min_version = 0;
  int max_version = 0;
  std::vector<X509*> chain = {};
};
SslCtxPtr MakeTestServerCtx(const KeyCert& leaf, const TestServerOptions& options = {});

// A plain OpenSSL client context that verifies nothing (to play a sandbox
// client against egressd's server side).
SslCtxPtr MakeTestClientCtx(int max_version = 0);

}  // namespace egressd::tls::testing
