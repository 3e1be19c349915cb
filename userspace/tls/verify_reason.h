// X509 verification results in words a person understands.
#pragma once

#include <string>
#include <string_view>

namespace egressd::tls {

// `code` is an X509_V_ERR_* (SSL_get_verify_result); `host` the name or
// address the certificate had to match. E.g. "certificate has expired",
// "hostname mismatch (the certificate does not name example.com)".
std::string DescribeVerifyFailure(long code, std::string_view host);

}  // namespace egressd::tls
