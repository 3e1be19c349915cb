// egressd's sandbox-facing TLS server stream (userspace/tls/tls_stream.cc,
// tls_server_context.cc) fed arbitrary bytes as if from the sandbox, once
// whole and once in pieces whose sizes come from the input. Checks the
// properties of fuzz_tls_common.h, that a server never reports a certificate
// error, and that whole and pieced runs fail alike (the outcome does not
// depend on how TCP split the bytes).
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "tests/fuzz/fuzz_tls_common.h"
#include "tests/unit/userspace/tls/test_certs.h"
#include "userspace/tls/tls_server_context.h"

using egressd::tls::TlsErrorKind;

namespace {

struct Fixture {
  std::shared_ptr<const egressd::tls::TlsServerContext> ctx;
  egressd::tls::testing::KeyCert root;
  egressd::tls::testing::KeyCert leaf;
};

const Fixture& Get() {
  static const Fixture* fixture = [] {
    auto* f = new Fixture;
    auto ctx = egressd::tls::TlsServerContext::Create();
    if (!ctx.ok()) std::abort();
    f->ctx = *ctx;
    f->root = egressd::tls::testing::MakeRoot();
    f->leaf = egressd::tls::testing::MakeLeaf(f->root, "example.test");
    return f;
  }();
  return *fixture;
}

TlsErrorKind Run(std::span<const uint8_t> in, std::span<const uint8_t> split) {
  const Fixture& f = Get();
  auto s = f.ctx->NewStream(f.leaf.cert.get(), f.leaf.key.get());
  if (!s.ok()) std::abort();
  TlsErrorKind kind = egressd::fuzz::FeedTls(*s, in, split);
  if (kind == TlsErrorKind::kCertificate) std::abort();  // the server checks no certificate
  return kind;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  if (Run(in, {}) != Run(in, in.first(std::min<size_t>(4, size)))) std::abort();
  return 0;
}
