// CiphertextBuffers through its BIO (what the SSL sees) and its queue ends
// (what the socket sees), and a TlsStream receiving straight into them.
#include "userspace/tls/ciphertext_buffers.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/unit/userspace/tls/test_certs.h"
#include "tests/unit/userspace/tls/tls_pump.h"
#include "userspace/common/openssl_ptr.h"
#include "userspace/tls/tls_stream.h"

namespace egressd::tls {
namespace {

using testing::ReadAll;

struct Pair {
  CiphertextBuffers buffers;
  BioPtr bio{CiphertextBuffers::NewBio(&buffers)};
};

TEST(CiphertextBuffersTest, BioReadsWhatWasReceivedThenAsksToRetry) {
  Pair p;
  ASSERT_TRUE(p.bio);
  auto space = p.buffers.RecvSpace();
  ASSERT_EQ(space.size(), CiphertextBuffers::kInSmall);
  memcpy(space.data(), "hello", 5);
  p.buffers.Received(5);
  EXPECT_EQ(BIO_pending(p.bio.get()), 5);
  char got[16] = {};
  EXPECT_EQ(BIO_read(p.bio.get(), got, 3), 3);
  EXPECT_EQ(BIO_read(p.bio.get(), got + 3, 16), 2);
  EXPECT_STREQ(got, "hello");
  EXPECT_LE(BIO_read(p.bio.get(), got, 16), 0);
  EXPECT_TRUE(BIO_should_retry(p.bio.get()));
  EXPECT_FALSE(BIO_eof(p.bio.get()));
  // After the peer's end: the rest, then EOF without a retry.
  p.buffers.Feed({reinterpret_cast<const uint8_t*>("!"), 1});
  p.buffers.FeedEof();
  EXPECT_EQ(BIO_read(p.bio.get(), got, 16), 1);
  EXPECT_LE(BIO_read(p.bio.get(), got, 16), 0);
  EXPECT_FALSE(BIO_should_retry(p.bio.get()));
  EXPECT_TRUE(BIO_eof(p.bio.get()));
}

// A receive may be in flight into the space while the SSL reads what came
// before: emptying the queue must not move that space.
TEST(CiphertextBuffersTest, RecvSpaceStaysPutWhileTheQueueEmpties) {
  Pair p;
  auto first = p.buffers.RecvSpace();
  memcpy(first.data(), "abc", 3);
  p.buffers.Received(3);
  auto second = p.buffers.RecvSpace();  // "in flight" from here
  char got[8] = {};
  EXPECT_EQ(BIO_read(p.bio.get(), got, 8), 3);
  memcpy(second.data(), "def", 3);
  p.buffers.Received(3);
  EXPECT_EQ(BIO_read(p.bio.get(), got, 8), 3);
  EXPECT_EQ(std::string(got, 3), "def");
}

TEST(CiphertextBuffersTest, InputGrowsWhileReceivesFillItAndShrinksAfter) {
  Pair p;
  std::vector<char> sink(CiphertextBuffers::kInLarge);
  auto drain = [&] {
    while (BIO_read(p.bio.get(), sink.data(), static_cast<int>(sink.size())) > 0) {
    }
  };
  auto space = p.buffers.RecvSpace();
  EXPECT_EQ(space.size(), CiphertextBuffers::kInSmall);
  p.buffers.Received(space.size());  // filled: a burst
  drain();
  space = p.buffers.RecvSpace();
  EXPECT_EQ(space.size(), CiphertextBuffers::kInLarge);
  p.buffers.Received(20000);  // most of a record or more: still a burst
  drain();
  EXPECT_EQ(p.buffers.RecvSpace().size(), CiphertextBuffers::kInLarge);
  p.buffers.Received(100);  // a small one: over
  drain();
  EXPECT_EQ(p.buffers.RecvSpace().size(), CiphertextBuffers::kInSmall);
  EXPECT_EQ(p.buffers.allocated(), CiphertextBuffers::kInSmall);
}

TEST(CiphertextBuffersTest, ShrinkingKeepsQueuedBytes) {
  Pair p;
  auto space = p.buffers.RecvSpace();
  p.buffers.Received(space.size());
  std::vector<char> skip(space.size());
  ASSERT_EQ(BIO_read(p.bio.get(), skip.data(), static_cast<int>(skip.size())),
            static_cast<int>(skip.size()));
  space = p.buffers.RecvSpace();
  ASSERT_EQ(space.size(), CiphertextBuffers::kInLarge);
  std::vector<uint8_t> pattern(100);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 7);
  memcpy(space.data(), pattern.data(), pattern.size());
  p.buffers.Received(pattern.size());  // small: the next space is small, the 100 bytes stay
  EXPECT_EQ(p.buffers.RecvSpace().size(), CiphertextBuffers::kInSmall - pattern.size());
  std::vector<uint8_t> got(pattern.size());
  ASSERT_EQ(BIO_read(p.bio.get(), got.data(), static_cast<int>(got.size())), 100);
  EXPECT_TRUE(got == pattern);
}

// A parked stream gives its empty input queue back; bytes still queued keep
// it. The next receive takes a small queue again, even after a burst.
TEST(CiphertextBuffersTest, AnEmptyInputIsGivenBackAndTakenAgainSmall) {
  Pair p;
  EXPECT_FALSE(p.buffers.ReleaseEmptyInput());  // none yet
  auto space = p.buffers.RecvSpace();
  p.buffers.Received(space.size());  // filled: the next one would be large
  EXPECT_FALSE(p.buffers.ReleaseEmptyInput());
  EXPECT_EQ(p.buffers.allocated(), CiphertextBuffers::kInSmall);
  std::vector<char> sink(space.size());
  ASSERT_EQ(BIO_read(p.bio.get(), sink.data(), static_cast<int>(sink.size())),
            static_cast<int>(sink.size()));
  EXPECT_TRUE(p.buffers.ReleaseEmptyInput());
  EXPECT_EQ(p.buffers.allocated(), 0u);
  space = p.buffers.RecvSpace();
  EXPECT_EQ(space.size(), CiphertextBuffers::kInSmall);
  memcpy(space.data(), "again", 5);
  p.buffers.Received(5);
  char got[8] = {};
  EXPECT_EQ(BIO_read(p.bio.get(), got, 8), 5);
  EXPECT_EQ(std::string(got, 5), "again");
}

TEST(CiphertextBuffersTest, OutputIsFreedWhenAllIsSent) {
  Pair p;
  EXPECT_EQ(p.buffers.allocated(), 0u);
  std::vector<uint8_t> record(5000, 0x17);
  ASSERT_EQ(BIO_write(p.bio.get(), record.data(), static_cast<int>(record.size())), 5000);
  EXPECT_EQ(BIO_wpending(p.bio.get()), 5000);
  EXPECT_EQ(p.buffers.allocated(), CiphertextBuffers::kOutCapacity);
  auto view = p.buffers.Pending();
  ASSERT_EQ(view.size(), 5000u);
  p.buffers.Consume(4000);
  EXPECT_EQ(p.buffers.Pending().size(), 1000u);
  p.buffers.Consume(1000);
  EXPECT_TRUE(p.buffers.Pending().empty());
  EXPECT_EQ(p.buffers.allocated(), 0u);
  // The next record goes into the same buffer, kept as the thread's spare.
  ASSERT_EQ(BIO_write(p.bio.get(), record.data(), 10), 10);
  EXPECT_EQ(p.buffers.Pending().data(), view.data());
}

TEST(CiphertextBuffersTest, FullOutputAsksTheSslToRetryAndBytesMoveOnlyWhenConsumed) {
  Pair p;
  constexpr size_t kCap = CiphertextBuffers::kOutCapacity;
  std::vector<uint8_t> lots(kCap + 100);
  for (size_t i = 0; i < lots.size(); ++i) lots[i] = static_cast<uint8_t>(i / 1000);
  ASSERT_EQ(BIO_write(p.bio.get(), lots.data(), kCap / 2), static_cast<int>(kCap / 2));
  const uint8_t* front = p.buffers.Pending().data();
  p.buffers.Consume(1000);  // a short send, plenty of room behind: nothing moves
  EXPECT_EQ(p.buffers.Pending().data(), front + 1000);
  // Filled up: the SSL is told to retry, and nothing moves.
  EXPECT_EQ(BIO_write(p.bio.get(), lots.data() + kCap / 2, static_cast<int>(kCap)),
            static_cast<int>(kCap / 2));
  EXPECT_LE(BIO_write(p.bio.get(), lots.data(), 100), 0);
  EXPECT_TRUE(BIO_should_retry(p.bio.get()));
  EXPECT_EQ(p.buffers.Pending().data(), front + 1000);
  // The next consume moves the tail to the front, to make room.
  p.buffers.Consume(1000);
  auto view = p.buffers.Pending();
  EXPECT_EQ(view.data(), front);
  ASSERT_EQ(view.size(), kCap - 2000);
  EXPECT_TRUE(std::equal(view.begin(), view.end(), lots.begin() + 2000));
  EXPECT_EQ(BIO_write(p.bio.get(), lots.data(), 100), 100);
}

// The stream end to end: the peer's records received straight into the
// stream, in pieces as a socket would return them.
class TlsStreamRecvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    leaf_ = testing::MakeLeaf(testing::MakeRoot(), "example.test");
    server_ctx_ = testing::MakeTestServerCtx(leaf_);
    client_ctx_ = testing::MakeTestClientCtx(0);
  }
  TlsStream New(SSL_CTX* ctx, TlsRole role) {
    auto s = TlsStream::Create(SslPtr(SSL_new(ctx)), role);
    EXPECT_TRUE(s.ok());
    return std::move(*s);
  }
  // Moves `from`'s ciphertext into `to` through RecvSpace, at most `piece`
  // bytes per receive.
  static void Receive(TlsStream& from, TlsStream& to, size_t piece) {
    for (;;) {
      auto view = from.PendingCiphertext();
      auto space = to.RecvSpace();
      if (view.empty() || space.empty()) return;
      size_t n = std::min({view.size(), space.size(), piece});
      memcpy(space.data(), view.data(), n);
      to.Received(n);
      from.ConsumeCiphertext(n);
    }
  }
  testing::KeyCert leaf_;
  SslCtxPtr server_ctx_, client_ctx_;
};

TEST_F(TlsStreamRecvTest, BulkThroughRecvSpaceArrivesWhole) {
  TlsStream server = New(server_ctx_.get(), TlsRole::kServer);
  TlsStream client = New(client_ctx_.get(), TlsRole::kClient);
  for (int i = 0; i < 20 && !(client.handshake_done() && server.handshake_done()); ++i) {
    client.Handshake();
    server.Handshake();
    Receive(client, server, 1000);
    Receive(server, client, 1000);
  }
  ASSERT_TRUE(client.handshake_done() && server.handshake_done());
  std::vector<uint8_t> body(1 << 20);
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<uint8_t>(i * 31 + i / 4096);
  std::vector<uint8_t> got;
  size_t sent = 0;
  for (int i = 0; i < 10000 && got.size() < body.size(); ++i) {
    sent += server.WritePlaintext(std::span(body).subspan(sent));
    ASSERT_LE(server.pending_ciphertext_bytes(), TlsStream::kCiphertextOutCapacity);
    Receive(server, client, i % 3 == 0 ? 5000 : 70000);
    ASSERT_LE(client.ciphertext_in_bytes(), TlsStream::kCiphertextInCapacity);
    ASSERT_NE(ReadAll(client, got), TlsIo::kError) << client.error().reason;
  }
  ASSERT_EQ(got.size(), body.size());
  EXPECT_TRUE(got == body);
  // All sent: the sender holds no output buffer.
  EXPECT_EQ(server.pending_ciphertext_bytes(), 0u);
  EXPECT_TRUE(server.PendingCiphertext().empty());
}

TEST_F(TlsStreamRecvTest, NoRecvSpaceAfterTheEnd) {
  TlsStream server = New(server_ctx_.get(), TlsRole::kServer);
  EXPECT_FALSE(server.RecvSpace().empty());
  server.FeedEof();
  EXPECT_TRUE(server.RecvSpace().empty());
}

}  // namespace
}  // namespace egressd::tls
