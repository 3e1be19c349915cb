// egressd's verified upstream client stream (userspace/tls/tls_stream.cc,
// tls_client_context.cc) fed arbitrary bytes as if from an upstream server
// (an allowed host can still be hostile), after its ClientHello, once whole
// and once in pieces whose sizes come from the input. Checks the properties
// of fuzz_tls_common.h (above all: the handshake never completes, so nothing
// an upstream sends gets past verification) and that whole and pieced runs
// fail alike.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "tests/fuzz/fuzz_tls_common.h"
#include "userspace/tls/tls_client_context.h"

using egressd::tls::TlsErrorKind;

namespace {

const egressd::tls::TlsClientContext& Context() {
  static const auto* ctx = [] {
    auto made = egressd::tls::TlsClientContext::Create({});  // the system trust store
    if (!made.ok()) std::abort();
    return new std::shared_ptr<const egressd::tls::TlsClientContext>(*made);
  }();
  return **ctx;
}

TlsErrorKind Run(std::span<const uint8_t> in, std::span<const uint8_t> split) {
  auto s = Context().NewStream({.sandbox = 1, .host = "example.test", .port = 443});
  if (!s.ok()) std::abort();
  return egressd::fuzz::FeedTls(*s, in, split);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  if (Run(in, {}) != Run(in, in.first(std::min<size_t>(4, size)))) std::abort();
  return 0;
}
