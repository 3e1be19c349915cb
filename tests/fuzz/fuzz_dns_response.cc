#include <cstdlib>
#include <span>
#include <string>

#include "userspace/protocol/dns_message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  auto r = egressd::protocol::ParseDnsResponse({data, size}, &error);
  if (!r) {
    if (error.empty()) std::abort();
    return 0;
  }
  if (r->answers.size() > 256) std::abort();
  for (const auto& a : r->answers) {
    if (a.ttl < r->min_ttl) std::abort();
    if (a.is_v4 && (a.addr[10] != 0xff || a.addr[11] != 0xff)) std::abort();
  }
  if (r->answers.empty() && r->min_ttl != 0) std::abort();
  return 0;
}
