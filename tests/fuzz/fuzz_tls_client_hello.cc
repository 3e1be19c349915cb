#include <cstdlib>
#include <span>

#include "userspace/protocol/tls_client_hello.h"

using egressd::protocol::ClientHelloStatus;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  auto r = egressd::protocol::ParseClientHello(in);
  if (r.status == ClientHelloStatus::kOk && r.sni) {
    if (!egressd::protocol::IsValidSniHostName(*r.sni)) std::abort();
    for (char c : *r.sni) {
      if (c >= 'A' && c <= 'Z') std::abort();  // lowercased
    }
  }
  if (r.status != ClientHelloStatus::kOk && r.sni) std::abort();
  if (r.status == ClientHelloStatus::kMalformed && r.error.empty()) std::abort();
  // Incremental consistency: a prefix of an accepted input is either already
  // complete (kOk) or needs more; it is never refused.
  if (r.status == ClientHelloStatus::kOk && size > 0) {
    auto p = egressd::protocol::ParseClientHello(in.first(size - 1));
    if (p.status != ClientHelloStatus::kOk && p.status != ClientHelloStatus::kNeedMore) {
      std::abort();
    }
  }
  return 0;
}
