#include "userspace/tls/verify_reason.h"

#include <fmt/format.h>
#include <openssl/x509_vfy.h>

namespace egressd::tls {

std::string DescribeVerifyFailure(long code, std::string_view host) {
  switch (code) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "certificate is not yet valid";
    case X509_V_ERR_HOSTNAME_MISMATCH:
      return fmt::format("hostname mismatch (the certificate does not name {})", host);
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return fmt::format("IP address mismatch (the certificate does not name {})", host);
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return "self-signed certificate";
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return "untrusted root (self-signed certificate in the chain)";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return "unknown issuer (untrusted root or incomplete chain)";
    case X509_V_ERR_INVALID_CA:
      return "issuer is not a CA (a non-CA certificate signed another one)";
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
      return "chain longer than an issuer allows (path length)";
    case X509_V_ERR_INVALID_PURPOSE:
      return "certificate is not for TLS servers (extended key usage)";
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
      return "key too small";
    case X509_V_ERR_CA_MD_TOO_WEAK:
      return "weak signature algorithm (SHA-1 or older)";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return "bad certificate signature";
    case X509_V_ERR_CERT_REVOKED:
      return "certificate revoked";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
      return "certificate chain too long";
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
      return "malformed certificate validity dates";
    default:
      return fmt::format("certificate verification failed: {}",
                         X509_verify_cert_error_string(code));
  }
}

}  // namespace egressd::tls
