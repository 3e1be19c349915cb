// egressd's sandbox-facing TLS server stream (userspace/tls/tls_stream.cc,
// tls_server_context.cc) fed arbitrary bytes as if from the sandbox, once
// whole and once in pieces whose sizes come from the input. Checks:
//   - no crash, no sanitizer report, no hang;
//   - every byte fed is eventually taken or the stream fails: a stall would
//     leave the proxy's connection waiting forever;
//   - the handshake never completes (nobody can finish it without the keys);
//   - ciphertext waiting to be sent stays within kCiphertextOutCapacity;
//   - a failure has a reason and a kind a sandbox can cause (never internal,
//     never a certificate error on the server side), and the stream stays
//     failed (takes nothing more);
//   - whole and pieced runs fail alike (the outcome does not depend on how TCP
//     split the bytes).
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "tests/unit/userspace/tls/test_certs.h"
#include "userspace/tls/tls_server_context.h"

using egressd::tls::TlsErrorKind;
using egressd::tls::TlsIo;
using egressd::tls::TlsStream;

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

// What the proxy's connection would do after new bytes: advance, read
// plaintext, send (here: drop) the ciphertext produced.
void Drive(TlsStream& s) {
  if (!s.handshake_done()) s.Handshake();
  if (s.handshake_done()) std::abort();  // cannot happen without the client's keys
  if (s.pending_ciphertext_bytes() > TlsStream::kCiphertextOutCapacity) std::abort();
  for (auto view = s.PendingCiphertext(); !view.empty(); view = s.PendingCiphertext()) {
    s.ConsumeCiphertext(view.size());
  }
}

struct Outcome {
  bool failed;
  TlsErrorKind kind;
};

Outcome Run(std::span<const uint8_t> in, std::span<const uint8_t> split) {
  const Fixture& f = Get();
  auto made = f.ctx->NewStream(f.leaf.cert.get(), f.leaf.key.get());
  if (!made.ok()) std::abort();
  TlsStream& s = *made;
  size_t off = 0;
  size_t piece = 0;
  while (off < in.size() && !s.failed()) {
    size_t step = split.empty() ? in.size() : split[piece++ % split.size()] % 512 + 1;
    auto chunk = in.subspan(off, std::min(step, in.size() - off));
    while (!chunk.empty() && !s.failed()) {
      size_t n = s.FeedCiphertext(chunk);
      if (n > chunk.size()) std::abort();
      chunk = chunk.subspan(n);
      off += n;
      Drive(s);
      if (n == 0 && !s.failed() && s.FeedCiphertext(chunk) == 0) std::abort();  // stalled
    }
  }
  if (!s.failed()) {
    s.FeedEof();
    Drive(s);
  }
  // Only an input that ends before the client's first flight is complete can
  // leave the stream waiting after EOF; EOF always ends it.
  if (!s.failed()) std::abort();
  const auto& e = s.error();
  if (e.reason.empty()) std::abort();
  if (e.kind == TlsErrorKind::kInternal || e.kind == TlsErrorKind::kCertificate ||
      e.kind == TlsErrorKind::kNone)
    std::abort();
  // Stays failed.
  const uint8_t more[] = {0x16, 0x03, 0x01, 0x00, 0x01, 0x01};
  if (s.FeedCiphertext(more) != 0 || s.Handshake() != TlsIo::kError) std::abort();
  return {s.failed(), e.kind};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  Outcome whole = Run(in, {});
  Outcome pieces = Run(in, in.first(std::min<size_t>(4, size)));
  if (whole.failed != pieces.failed || whole.kind != pieces.kind) std::abort();
  return 0;
}
