#include "userspace/common/openssl_errors.h"

#include <openssl/err.h>

namespace egressd {

OpensslErrors TakeOpensslErrors() {
  OpensslErrors out;
  bool first = true;
  while (unsigned long e = ERR_get_error()) {
    if (first) {
      out.lib = ERR_GET_LIB(e);
      out.reason = ERR_GET_REASON(e);
      first = false;
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.text.empty()) out.text += "; ";
    out.text += buf;
  }
  return out;
}

std::string OpensslErrorText() {
  std::string text = TakeOpensslErrors().text;
  return text.empty() ? "no reason given by OpenSSL" : text;
}

}  // namespace egressd
