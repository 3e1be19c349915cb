// The sandbox's CA, trusted inside `egressctl run` when its policy
// intercepts TLS (tls.intercept): in the command's mount namespace, a bundle
// of the host's roots plus the CA replaces every system bundle file present,
// and the variables TLS clients read point at it. Only the CA's certificate
// is ever handled here (the daemon never sends its key).
//
// The files live on a tmpfs mounted on kTrustDir in that namespace only,
// remounted read-only once written (as are the bind mounts over the system
// bundles): the command, whatever its user, can read them and can neither
// write nor replace them (it has no CAP_SYS_ADMIN to unmount them).
#pragma once

#include <string>

namespace egressctl {

// The mount point; created (empty, 0755) on the host when missing.
inline constexpr const char* kTrustDir = "/run/egressd-ca";
inline constexpr const char* kTrustBundle = "/run/egressd-ca/bundle.pem";  // host roots + CA
inline constexpr const char* kTrustCa = "/run/egressd-ca/ca.pem";          // the CA alone

// The system bundles replaced where present; the first present gives the roots.
inline constexpr const char* kSystemBundles[] = {
    "/etc/ssl/certs/ca-certificates.crt",                 // Debian, Ubuntu
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  // RHEL, Fedora
    "/etc/ssl/cert.pem",                                  // Alpine
};

// Variables that replace a client's store: set to kTrustBundle.
inline constexpr const char* kBundleVariables[] = {
    "SSL_CERT_FILE",  "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PIP_CERT",
    "GIT_SSL_CAINFO", "AWS_CA_BUNDLE",  "CARGO_HTTP_CAINFO"};
// Variables that add to a client's store: set to kTrustCa.
inline constexpr const char* kCaVariables[] = {"NODE_EXTRA_CA_CERTS", "DENO_CERT"};

// Whether `pem` is exactly one PEM certificate, nothing before or after it
// (so no key can travel with it).
bool IsOneCertificatePem(const std::string& pem);

// In the command's mount namespace (mounts already private), while the
// process still has CAP_SYS_ADMIN: writes and mounts the files, then sets
// the variables in this process's environment, which the command inherits.
// On failure `stage` says what failed and errno why.
bool TrustSandboxCa(const std::string& ca_pem, std::string* stage);

}  // namespace egressctl
