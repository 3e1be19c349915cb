// The upstream side refuses every bad certificate, each with a reason a
// person understands. The "upstream" is a plain OpenSSL server (security
// level 0, so it can present anything) talking to egressd's client stream in
// memory; certificates are made by the test (test_certs.h).
#include <gtest/gtest.h>

#include "tests/unit/userspace/tls/test_certs.h"
#include "tests/unit/userspace/tls/tls_pump.h"
#include "userspace/tls/tls_client_context.h"

namespace egressd::tls {
namespace {

using testing::CertSpec;
using testing::Eku;
using testing::KeyCert;
using testing::KeyKind;
using testing::MakeCert;
using testing::MakeLeaf;
using testing::MakeRoot;
using testing::TempFile;
using testing::TestServerOptions;

constexpr long kDay = 86400;

struct Outcome {
  bool client_done = false;
  bool server_done = false;
  TlsError error;
  std::string server_saw_sni;
  std::string version;
};

class TlsClientVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeRoot("trusted test root");
    roots_file_ = std::make_unique<TempFile>(testing::Pem(root_.cert.get()));
    TlsClientOptions options;
    options.extra_roots_file = roots_file_->path();
    auto ctx = TlsClientContext::Create(options);
    ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
    client_ctx_ = *ctx;
  }

  Outcome Connect(const KeyCert& leaf, const std::string& host,
                  const TestServerOptions& options = {}) {
    SslCtxPtr server_ctx = testing::MakeTestServerCtx(leaf, options);
    auto server = TlsStream::Create(SslPtr(SSL_new(server_ctx.get())), TlsRole::kServer);
    EXPECT_TRUE(server.ok());
    auto client = client_ctx_->NewStream({.sandbox = 1, .host = host, .port = 443});
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    testing::PumpHandshake(*client, *server);
    Outcome out;
    out.client_done = client->handshake_done();
    out.server_done = server->handshake_done();
    out.error = client->error();
    out.server_saw_sni = server->info().sni;
    out.version = client->info().version;
    return out;
  }

  // A leaf for good.test signed by the trusted root, changed by `tweak`.
  template <typename Tweak>
  KeyCert Leaf(Tweak tweak) {
    CertSpec spec;
    spec.cn = "good.test";
    spec.dns = {"good.test"};
    tweak(spec);
    return MakeCert(spec, &root_);
  }

  void ExpectRefused(const Outcome& o, TlsErrorKind kind, const std::string& reason) {
    EXPECT_FALSE(o.client_done);
    EXPECT_EQ(o.error.kind, kind) << o.error.reason << " / " << o.error.detail;
    EXPECT_EQ(o.error.reason, reason) << o.error.detail;
  }

  KeyCert root_;
  std::unique_ptr<TempFile> roots_file_;
  std::shared_ptr<const TlsClientContext> client_ctx_;
};

TEST_F(TlsClientVerifyTest, TrustedLeafVerifies) {
  Outcome o = Connect(MakeLeaf(root_, "good.test"), "good.test");
  EXPECT_TRUE(o.client_done) << o.error.reason << " / " << o.error.detail;
  EXPECT_EQ(o.error.kind, TlsErrorKind::kNone);
  EXPECT_EQ(o.server_saw_sni, "good.test");
  EXPECT_EQ(o.version, "TLSv1.3");
}

TEST_F(TlsClientVerifyTest, TrustedChainThroughIntermediateVerifies) {
  CertSpec ica;
  ica.cn = "test intermediate";
  ica.ca = true;
  KeyCert intermediate = MakeCert(ica, &root_);
  Outcome o = Connect(MakeLeaf(intermediate, "good.test"), "good.test",
                      {.chain = {intermediate.cert.get()}});
  EXPECT_TRUE(o.client_done) << o.error.reason << " / " << o.error.detail;
}

TEST_F(TlsClientVerifyTest, Tls12UpstreamVerifies) {
  Outcome o = Connect(MakeLeaf(root_, "good.test"), "good.test", {.max_version = TLS1_2_VERSION});
  EXPECT_TRUE(o.client_done) << o.error.reason;
  EXPECT_EQ(o.version, "TLSv1.2");
}

TEST_F(TlsClientVerifyTest, RefusesExpired) {
  KeyCert leaf = Leaf([](CertSpec& s) {
    s.not_before = -10 * kDay;
    s.not_after = -kDay;
  });
  ExpectRefused(Connect(leaf, "good.test"), TlsErrorKind::kCertificate, "certificate has expired");
}

TEST_F(TlsClientVerifyTest, RefusesNotYetValid) {
  KeyCert leaf = Leaf([](CertSpec& s) {
    s.not_before = kDay;
    s.not_after = 10 * kDay;
  });
  ExpectRefused(Connect(leaf, "good.test"), TlsErrorKind::kCertificate,
                "certificate is not yet valid");
}

TEST_F(TlsClientVerifyTest, RefusesWrongHost) {
  ExpectRefused(Connect(MakeLeaf(root_, "other.test"), "good.test"), TlsErrorKind::kCertificate,
                "hostname mismatch (the certificate does not name good.test)");
}

TEST_F(TlsClientVerifyTest, RefusesNameOnlyInSubjectCn) {
  KeyCert leaf = Leaf([](CertSpec& s) { s.dns.clear(); });  // CN=good.test, no SAN
  ExpectRefused(Connect(leaf, "good.test"), TlsErrorKind::kCertificate,
                "hostname mismatch (the certificate does not name good.test)");
}

TEST_F(TlsClientVerifyTest, WildcardCoversOneLabelOnly) {
  KeyCert leaf = Leaf([](CertSpec& s) { s.dns = {"*.good.test"}; });
  EXPECT_TRUE(Connect(leaf, "a.good.test").client_done);
  ExpectRefused(Connect(leaf, "a.b.good.test"), TlsErrorKind::kCertificate,
                "hostname mismatch (the certificate does not name a.b.good.test)");
  ExpectRefused(Connect(leaf, "good.test"), TlsErrorKind::kCertificate,
                "hostname mismatch (the certificate does not name good.test)");
}

TEST_F(TlsClientVerifyTest, RefusesSelfSigned) {
  CertSpec spec;
  spec.cn = "good.test";
  spec.dns = {"good.test"};
  ExpectRefused(Connect(MakeCert(spec, nullptr), "good.test"), TlsErrorKind::kCertificate,
                "self-signed certificate");
}

TEST_F(TlsClientVerifyTest, RefusesUntrustedRoot) {
  KeyCert other_root = MakeRoot("untrusted root");
  KeyCert leaf = MakeLeaf(other_root, "good.test");
  // The server sends its root along: a self-signed certificate in the chain.
  ExpectRefused(Connect(leaf, "good.test", {.chain = {other_root.cert.get()}}),
                TlsErrorKind::kCertificate,
                "untrusted root (self-signed certificate in the chain)");
  // The server sends the leaf alone.
  ExpectRefused(Connect(leaf, "good.test"), TlsErrorKind::kCertificate,
                "unknown issuer (untrusted root or incomplete chain)");
}

TEST_F(TlsClientVerifyTest, RefusesIncompleteChain) {
  CertSpec ica;
  ica.cn = "test intermediate";
  ica.ca = true;
  KeyCert intermediate = MakeCert(ica, &root_);
  // The intermediate is missing from what the server sends.
  ExpectRefused(Connect(MakeLeaf(intermediate, "good.test"), "good.test"),
                TlsErrorKind::kCertificate, "unknown issuer (untrusted root or incomplete chain)");
}

TEST_F(TlsClientVerifyTest, RefusesLeafUsedAsCa) {
  KeyCert first = MakeLeaf(root_, "first.test");  // CA:FALSE
  KeyCert second = MakeLeaf(first, "good.test");
  ExpectRefused(Connect(second, "good.test", {.chain = {first.cert.get()}}),
                TlsErrorKind::kCertificate,
                "issuer is not a CA (a non-CA certificate signed another one)");
}

TEST_F(TlsClientVerifyTest, RefusesClientAuthOnlyEku) {
  KeyCert leaf = Leaf([](CertSpec& s) { s.eku = Eku::kClientAuth; });
  ExpectRefused(Connect(leaf, "good.test"), TlsErrorKind::kCertificate,
                "certificate is not for TLS servers (extended key usage)");
}

TEST_F(TlsClientVerifyTest, RefusesRsa1024) {
  KeyCert leaf = Leaf([](CertSpec& s) { s.key = KeyKind::kRsa1024; });
  ExpectRefused(Connect(leaf, "good.test"), TlsErrorKind::kCertificate, "key too small");
}

TEST_F(TlsClientVerifyTest, RefusesSha1Signature) {
  KeyCert leaf = Leaf([](CertSpec& s) { s.md = EVP_sha1(); });
  ExpectRefused(Connect(leaf, "good.test"), TlsErrorKind::kCertificate,
                "weak signature algorithm (SHA-1 or older)");
}

TEST_F(TlsClientVerifyTest, RefusesTls10AndTls11Servers) {
  // RSA leaf: TLS 1.0/1.1 handshake signatures are RSA (MD5+SHA1) or ECDSA-SHA1.
  KeyCert leaf = Leaf([](CertSpec& s) { s.key = KeyKind::kRsa2048; });
  for (int version : {TLS1_VERSION, TLS1_1_VERSION}) {
    Outcome o = Connect(leaf, "good.test", {.min_version = version, .max_version = version});
    ExpectRefused(o, TlsErrorKind::kProtocol, "protocol version too old (TLS 1.2 is the minimum)");
    EXPECT_FALSE(o.server_done);
  }
}

TEST_F(TlsClientVerifyTest, IpLiteralWithIpSanVerifiesWithoutSni) {
  KeyCert leaf = Leaf([](CertSpec& s) {
    s.dns.clear();
    s.ips = {"127.0.0.1", "::1"};
  });
  for (const char* host : {"127.0.0.1", "::1", "[::1]"}) {
    Outcome o = Connect(leaf, host);
    EXPECT_TRUE(o.client_done) << host << ": " << o.error.reason;
    EXPECT_EQ(o.server_saw_sni, "") << host;  // no SNI for an address
  }
}

TEST_F(TlsClientVerifyTest, RefusesIpLiteralWithoutIpSan) {
  KeyCert leaf = Leaf([](CertSpec& s) { s.dns = {"good.test", "127.0.0.1"}; });
  ExpectRefused(Connect(leaf, "127.0.0.1"), TlsErrorKind::kCertificate,
                "IP address mismatch (the certificate does not name 127.0.0.1)");
  ExpectRefused(Connect(leaf, "::1"), TlsErrorKind::kCertificate,
                "IP address mismatch (the certificate does not name ::1)");
  KeyCert other_ip = Leaf([](CertSpec& s) { s.ips = {"127.0.0.2"}; });
  ExpectRefused(Connect(other_ip, "127.0.0.1"), TlsErrorKind::kCertificate,
                "IP address mismatch (the certificate does not name 127.0.0.1)");
}

TEST_F(TlsClientVerifyTest, RefusesHostThatIsNoName) {
  for (const char* host : {"", "a b", "x/y", "bad\nname"}) {
    EXPECT_FALSE(client_ctx_->NewStream({.sandbox = 1, .host = host, .port = 443}).ok()) << host;
  }
}

TEST(TlsClientContext, ExtraRootsFileMustHoldACertificate) {
  auto missing = TlsClientContext::Create({.extra_roots_file = "/nonexistent/roots.pem"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--upstream-ca /nonexistent/roots.pem"),
            std::string::npos)
      << missing.status().message();
  TempFile garbage("this is not PEM\n");
  auto bad = TlsClientContext::Create({.extra_roots_file = garbage.path()});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(garbage.path()), std::string::npos);
  TempFile empty("");
  EXPECT_FALSE(TlsClientContext::Create({.extra_roots_file = empty.path()}).ok());
  EXPECT_TRUE(TlsClientContext::Create({}).ok());  // the system store alone
}

TEST(TlsClientContext, SystemStoreAloneDoesNotTrustTestRoots) {
  auto ctx = TlsClientContext::Create({});
  ASSERT_TRUE(ctx.ok());
  KeyCert root = MakeRoot();
  KeyCert leaf = MakeLeaf(root, "good.test");
  SslCtxPtr server_ctx = testing::MakeTestServerCtx(leaf);
  auto server = TlsStream::Create(SslPtr(SSL_new(server_ctx.get())), TlsRole::kServer);
  auto client = (*ctx)->NewStream({.sandbox = 1, .host = "good.test", .port = 443});
  ASSERT_TRUE(server.ok() && client.ok());
  testing::PumpHandshake(*client, *server);
  EXPECT_FALSE(client->handshake_done());
  EXPECT_EQ(client->error().reason, "unknown issuer (untrusted root or incomplete chain)");
}

}  // namespace
}  // namespace egressd::tls
