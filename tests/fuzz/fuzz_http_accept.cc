// AcceptPrefersJson on any header value: it returns, and a value that names
// text/plain first with full weight never prefers JSON (text/plain is then as
// heavy and as specific as JSON can be, and listed before it).
#include <cstdlib>
#include <string>
#include <string_view>

#include "userspace/protocol/http_accept.h"

using egressd::protocol::AcceptPrefersJson;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)AcceptPrefersJson(in);
  if (AcceptPrefersJson("text/plain, " + std::string(in))) std::abort();
  return 0;
}
