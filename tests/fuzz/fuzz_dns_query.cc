#include <cstdlib>
#include <span>
#include <string>

#include "userspace/protocol/dns_message.h"

using egressd::protocol::DnsType;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  auto q = egressd::protocol::ParseDnsQuery({data, size}, &error);
  if (!q) {
    if (error.empty()) std::abort();
    return 0;
  }
  // Whatever the forwarder accepts is a name egressd could itself query, and
  // it survives a round trip unchanged.
  auto built = egressd::protocol::BuildDnsQuery(q->id, q->name, DnsType::kA);
  if (!built) std::abort();
  auto again = egressd::protocol::ParseDnsQuery(*built, &error);
  if (!again || again->name != q->name || again->id != q->id || again->type != 1) std::abort();
  return 0;
}
