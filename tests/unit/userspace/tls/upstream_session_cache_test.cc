#include "userspace/tls/upstream_session_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <thread>

#include "tests/unit/userspace/tls/test_certs.h"
#include "tests/unit/userspace/tls/tls_pump.h"
#include "userspace/tls/tls_client_context.h"

namespace egressd::tls {
namespace {

using testing::KeyCert;
using testing::TempFile;

SslSessionPtr FakeSession(int version, unsigned char id, time_t created = time(nullptr)) {
  SslSessionPtr s(SSL_SESSION_new());
  SSL_SESSION_set_protocol_version(s.get(), version);
  unsigned char sid[32] = {id};
  SSL_SESSION_set1_id(s.get(), sid, sizeof sid);
  SSL_SESSION_set_time(s.get(), created);
  SSL_SESSION_set_timeout(s.get(), 300);
  return s;
}

TEST(UpstreamSessionCache, Tls13SessionsAreSingleUse) {
  UpstreamSessionCache cache;
  const std::string key = UpstreamSessionCache::Key(1, "a.test", 443, "http/1.1");
  cache.Put(key, FakeSession(TLS1_3_VERSION, 1));
  EXPECT_NE(cache.Take(key), nullptr);
  EXPECT_EQ(cache.Take(key), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(UpstreamSessionCache, Tls12SessionsStay) {
  UpstreamSessionCache cache;
  const std::string key = UpstreamSessionCache::Key(1, "a.test", 443, "http/1.1");
  cache.Put(key, FakeSession(TLS1_2_VERSION, 1));
  EXPECT_NE(cache.Take(key), nullptr);
  EXPECT_NE(cache.Take(key), nullptr);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(UpstreamSessionCache, ExpiredSessionsAreNotOffered) {
  UpstreamSessionCache cache;
  const std::string key = UpstreamSessionCache::Key(1, "a.test", 443, "http/1.1");
  cache.Put(key, FakeSession(TLS1_2_VERSION, 1, time(nullptr) - 1000));
  EXPECT_EQ(cache.Take(key), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(UpstreamSessionCache, BoundedLeastRecentlyUsedFirst) {
  UpstreamSessionCache cache(3);
  auto k = [](int i) { return UpstreamSessionCache::Key(1, "h" + std::to_string(i), 443, ""); };
  for (int i = 0; i < 3; ++i) cache.Put(k(i), FakeSession(TLS1_2_VERSION, i));
  EXPECT_NE(cache.Take(k(0)), nullptr);  // k(0) is now the most recently used
  cache.Put(k(3), FakeSession(TLS1_2_VERSION, 3));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Take(k(1)), nullptr);  // evicted
  EXPECT_NE(cache.Take(k(0)), nullptr);
  EXPECT_NE(cache.Take(k(3)), nullptr);
  // At most kSessionsPerKey per key.
  UpstreamSessionCache big(1000);
  for (size_t i = 0; i < UpstreamSessionCache::kSessionsPerKey + 10; ++i)
    big.Put(k(9), FakeSession(TLS1_3_VERSION, static_cast<int>(i)));
  EXPECT_EQ(big.size(), UpstreamSessionCache::kSessionsPerKey);
}

TEST(UpstreamSessionCache, TakeOffersOnlyASessionThatFitsAndKeepsTheOthers) {
  UpstreamSessionCache cache;
  const std::string key = UpstreamSessionCache::Key(1, "@127.0.0.1", 443, "http/1.1");
  cache.Put(key, FakeSession(TLS1_3_VERSION, 1));
  cache.Put(key, FakeSession(TLS1_3_VERSION, 2));
  auto id_is = [](unsigned char want) {
    return [want](SSL_SESSION* s) {
      unsigned int len = 0;
      return SSL_SESSION_get_id(s, &len)[0] == want;
    };
  };
  EXPECT_EQ(cache.Take(key, id_is(9)), nullptr);
  EXPECT_EQ(cache.size(), 2u);
  SslSessionPtr older = cache.Take(key, id_is(1));  // not the newest, but the one that fits
  ASSERT_NE(older, nullptr);
  unsigned int len = 0;
  EXPECT_EQ(SSL_SESSION_get_id(older.get(), &len)[0], 1);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.Take(key), nullptr);
}

TEST(UpstreamSessionCache, KeysKeepSandboxesHostsPortsAndAlpnApart) {
  auto key = UpstreamSessionCache::Key(1, "a.test", 443, "http/1.1");
  EXPECT_NE(key, UpstreamSessionCache::Key(2, "a.test", 443, "http/1.1"));
  EXPECT_NE(key, UpstreamSessionCache::Key(1, "b.test", 443, "http/1.1"));
  EXPECT_NE(key, UpstreamSessionCache::Key(1, "a.test", 8443, "http/1.1"));
  EXPECT_NE(key, UpstreamSessionCache::Key(1, "a.test", 443, "h2"));
  EXPECT_NE(UpstreamSessionCache::Key(1, "a.test", 4431, ""),
            UpstreamSessionCache::Key(1, "a.test", 443, "1"));
}

// Real resumption against a plain OpenSSL server that issues tickets.
class UpstreamResumptionTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    root_ = testing::MakeRoot();
    leaf_ = testing::MakeLeaf(root_, "good.test");
    roots_file_ = std::make_unique<TempFile>(testing::Pem(root_.cert.get()));
    auto ctx = TlsClientContext::Create({.extra_roots_file = roots_file_->path()});
    ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
    client_ctx_ = *ctx;
    server_ctx_ = testing::MakeTestServerCtx(leaf_, {.max_version = GetParam()});
  }

  // One connection: handshake, one response read (which brings TLS 1.3
  // tickets in), close (with egressd's close_notify unless `drop`: then
  // the stream is just freed, as when the upstream closes first).
  // Returns whether the session was resumed.
  bool Connect(const UpstreamTarget& target, bool drop = false) {
    auto server = TlsStream::Create(SslPtr(SSL_new(server_ctx_.get())), TlsRole::kServer);
    auto client = client_ctx_->NewStream(target);
    EXPECT_TRUE(server.ok() && client.ok());
    testing::PumpHandshake(*client, *server);
    EXPECT_TRUE(client->handshake_done()) << client->error().reason;
    const uint8_t hello[] = {'h', 'i'};
    EXPECT_EQ(server->WritePlaintext(hello), 2u);
    testing::Shuttle(*server, *client);
    std::vector<uint8_t> got;
    testing::ReadAll(*client, got);
    EXPECT_EQ(got.size(), 2u);
    if (!drop) client->Shutdown();
    return client->info().resumed;
  }

  KeyCert root_, leaf_;
  std::unique_ptr<TempFile> roots_file_;
  std::shared_ptr<const TlsClientContext> client_ctx_;
  SslCtxPtr server_ctx_;
};

TEST_P(UpstreamResumptionTest, SecondConnectionResumesOnlyForTheSameKey) {
  const UpstreamTarget target{.sandbox = 7, .host = "good.test", .port = 443};
  EXPECT_FALSE(Connect(target));
  EXPECT_GE(client_ctx_->sessions().size(), 1u);
  EXPECT_TRUE(Connect(target));
  EXPECT_TRUE(Connect(target));  // TLS 1.3: the resumed connection brought a new ticket
  EXPECT_FALSE(Connect({.sandbox = 8, .host = "good.test", .port = 443}));   // other sandbox
  EXPECT_FALSE(Connect({.sandbox = 7, .host = "good.test", .port = 8443}));  // other port
}

// Sessions kept per address: a name never seen resumes a session of another
// name at the same address when the certificate that session verified is
// valid for it, and only then (a resumed handshake checks no certificate).
TEST_P(UpstreamResumptionTest, ANewNameAtTheSameAddressResumesOnlyWhereTheCertificateFits) {
  leaf_ = testing::MakeLeaf(root_, "*.good.test");
  server_ctx_ = testing::MakeTestServerCtx(leaf_, {.max_version = GetParam()});
  auto at = [](const std::string& host, const std::string& address) {
    return UpstreamTarget{.sandbox = 7, .host = host, .port = 443, .address = address};
  };
  EXPECT_FALSE(Connect(at("a.good.test", "127.0.0.1")));
  EXPECT_TRUE(Connect(at("b.good.test", "127.0.0.1")));
  EXPECT_TRUE(Connect(at("c.good.test", "127.0.0.1")));
  EXPECT_FALSE(Connect(at("d.good.test", "127.0.0.2")));  // another address
  // A name the certificate does not cover: no session is offered, so the
  // full handshake's hostname check refuses the certificate.
  auto server = TlsStream::Create(SslPtr(SSL_new(server_ctx_.get())), TlsRole::kServer);
  auto client = client_ctx_->NewStream(at("other.test", "127.0.0.1"));
  ASSERT_TRUE(server.ok() && client.ok());
  testing::PumpHandshake(*client, *server);
  EXPECT_FALSE(client->handshake_done());
  EXPECT_FALSE(client->info().resumed);
  // The sessions that did not fit are still there for the names they fit.
  EXPECT_TRUE(Connect(at("e.good.test", "127.0.0.1")));
}

// An upstream that closes first (no close_notify from egressd): OpenSSL
// marks the connection's session non-resumable as it is freed. The cached
// copies are not affected: every connection after the first resumes (it
// was one in two).
TEST_P(UpstreamResumptionTest, ConnectionsEndedWithoutCloseNotifyStillResume) {
  const UpstreamTarget target{.sandbox = 7, .host = "good.test", .port = 443};
  EXPECT_FALSE(Connect(target, /*drop=*/true));
  int resumed = 0;
  for (int i = 0; i < 10; ++i) resumed += Connect(target, /*drop=*/true);
  EXPECT_EQ(resumed, 10);
}

// Several workers share one client context (and its cache) and one upstream:
// every connection verifies, and most resume.
TEST_P(UpstreamResumptionTest, WorkersShareTheCache) {
  constexpr int kThreads = 4, kPerThread = 15;
  std::atomic<int> resumed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        if (Connect({.sandbox = 7, .host = "good.test", .port = 443})) ++resumed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(resumed.load(), kThreads * kPerThread / 2);
  EXPECT_LE(client_ctx_->sessions().size(), UpstreamSessionCache::kSessionsPerKey);
}

INSTANTIATE_TEST_SUITE_P(Versions, UpstreamResumptionTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION), [](const auto& info) {
                           return info.param == TLS1_2_VERSION ? std::string("Tls12")
                                                               : std::string("Tls13");
                         });

}  // namespace
}  // namespace egressd::tls
