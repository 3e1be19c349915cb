// TlsStream with egressd's server side and client side talking in memory.
#include "userspace/tls/tls_stream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "tests/unit/userspace/tls/test_certs.h"
#include "tests/unit/userspace/tls/tls_pump.h"
#include "userspace/tls/tls_client_context.h"
#include "userspace/tls/tls_server_context.h"

namespace egressd::tls {
namespace {

using testing::KeyCert;
using testing::MakeLeaf;
using testing::MakeRoot;
using testing::PumpHandshake;
using testing::ReadAll;
using testing::Shuttle;
using testing::TempFile;

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeRoot();
    leaf_ = MakeLeaf(root_, "example.test");
    roots_file_ = std::make_unique<TempFile>(testing::Pem(root_.cert.get()));
    auto server = TlsServerContext::Create();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ctx_ = *server;
    TlsClientOptions options;
    options.extra_roots_file = roots_file_->path();
    auto client = TlsClientContext::Create(options);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ctx_ = *client;
  }

  TlsStream NewServer() {
    auto s = server_ctx_->NewStream(leaf_.cert.get(), leaf_.key.get());
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(*s);
  }
  TlsStream NewClient(const std::string& host = "example.test") {
    auto s = client_ctx_->NewStream({.sandbox = 1, .host = host, .port = 443});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(*s);
  }
  // A plain OpenSSL client (no verification) with the given ALPN offer.
  TlsStream NewRawClient(const std::string& alpn_wire, int max_version = 0,
                         const char* sni = "example.test") {
    raw_client_ctx_ = testing::MakeTestClientCtx(max_version);
    SslPtr ssl(SSL_new(raw_client_ctx_.get()));
    if (sni) SSL_set_tlsext_host_name(ssl.get(), sni);
    if (!alpn_wire.empty()) {
      SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(alpn_wire.data()),
                          alpn_wire.size());
    }
    auto s = TlsStream::Create(std::move(ssl), TlsRole::kClient);
    EXPECT_TRUE(s.ok());
    return std::move(*s);
  }

  KeyCert root_, leaf_;
  std::unique_ptr<TempFile> roots_file_;
  std::shared_ptr<const TlsServerContext> server_ctx_;
  std::shared_ptr<const TlsClientContext> client_ctx_;
  SslCtxPtr raw_client_ctx_;
};

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string Text(const std::vector<uint8_t>& v) {
  return {v.begin(), v.end()};
}

TEST_F(TlsStreamTest, Tls13HandshakeWithSniAndAlpn) {
  TlsStream server = NewServer();
  TlsStream client = NewClient();
  PumpHandshake(client, server);
  ASSERT_TRUE(client.handshake_done()) << client.error().reason;
  ASSERT_TRUE(server.handshake_done()) << server.error().reason;
  EXPECT_EQ(client.info().version, "TLSv1.3");
  EXPECT_EQ(client.info().alpn, "http/1.1");
  EXPECT_EQ(server.info().alpn, "http/1.1");
  EXPECT_EQ(server.info().sni, "example.test");  // the client sent the SNI the leaf is for
  EXPECT_FALSE(client.info().cipher.empty());
  EXPECT_FALSE(client.info().resumed);
}

TEST_F(TlsStreamTest, Tls12Handshake) {
  TlsStream server = NewServer();
  TlsStream client = NewRawClient(std::string("\x08http/1.1", 9), TLS1_2_VERSION);
  PumpHandshake(client, server);
  ASSERT_TRUE(server.handshake_done()) << server.error().reason;
  EXPECT_EQ(server.info().version, "TLSv1.2");
  EXPECT_EQ(server.info().alpn, "http/1.1");
  EXPECT_EQ(server.info().sni, "example.test");
  // An ECDHE-ECDSA AEAD suite: the leaf is ECDSA.
  EXPECT_NE(server.info().cipher.find("ECDHE-ECDSA"), std::string::npos) << server.info().cipher;
}

// The server offers only what its P-256 leaf can sign: a TLS 1.2 client
// offering only ECDSA with SHA-384 gets that, one that lists only RSA schemes
// gets no handshake, and TLS 1.3 signs with ecdsa_secp256r1_sha256.
TEST_F(TlsStreamTest, HandshakesAreSignedWithWhatTheLeafCanSign) {
  {
    TlsStream server = NewServer();
    TlsStream client = NewRawClient("", TLS1_2_VERSION);
    ASSERT_EQ(SSL_set1_sigalgs_list(client.native_handle(), "ECDSA+SHA384"), 1);
    PumpHandshake(client, server);
    ASSERT_TRUE(client.handshake_done()) << client.error().reason;
    int digest = 0;
    ASSERT_EQ(SSL_get_peer_signature_nid(client.native_handle(), &digest), 1);
    EXPECT_EQ(digest, NID_sha384);
  }
  {
    TlsStream server = NewServer();
    TlsStream client = NewRawClient("");
    ASSERT_EQ(SSL_set1_sigalgs_list(client.native_handle(), "RSA-PSS+SHA256:RSA+SHA256"), 1);
    PumpHandshake(client, server);
    EXPECT_FALSE(server.handshake_done());
    EXPECT_TRUE(server.failed());
  }
  TlsStream server = NewServer();
  TlsStream client = NewRawClient("");
  PumpHandshake(client, server);
  ASSERT_TRUE(client.handshake_done()) << client.error().reason;
  int type = 0;
  ASSERT_EQ(SSL_get_peer_signature_type_nid(client.native_handle(), &type), 1);
  EXPECT_EQ(type, NID_X9_62_id_ecPublicKey);
  int digest = 0;
  ASSERT_EQ(SSL_get_peer_signature_nid(client.native_handle(), &digest), 1);
  EXPECT_EQ(digest, NID_sha256);
}

TEST_F(TlsStreamTest, ServerRefusesTls11Client) {
  TlsStream server = NewServer();
  TlsStream client = NewRawClient("", TLS1_1_VERSION);
  SSL_set_security_level(client.native_handle(), 0);
  PumpHandshake(client, server);
  EXPECT_FALSE(server.handshake_done());
  ASSERT_TRUE(server.failed());
  EXPECT_EQ(server.error().reason, "protocol version too old (TLS 1.2 is the minimum)");
}

TEST_F(TlsStreamTest, DataBothWays) {
  TlsStream server = NewServer();
  TlsStream client = NewClient();
  PumpHandshake(client, server);
  ASSERT_TRUE(client.handshake_done() && server.handshake_done());

  std::string_view request = "GET / HTTP/1.1\r\nHost: example.test\r\n\r\n";
  ASSERT_EQ(client.WritePlaintext(Bytes(request)), request.size());
  Shuttle(client, server);
  std::vector<uint8_t> got;
  EXPECT_EQ(ReadAll(server, got), TlsIo::kNeedMore);
  EXPECT_EQ(Text(got), request);

  std::string_view response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  ASSERT_EQ(server.WritePlaintext(Bytes(response)), response.size());
  Shuttle(server, client);
  got.clear();
  EXPECT_EQ(ReadAll(client, got), TlsIo::kNeedMore);
  EXPECT_EQ(Text(got), response);
}

// One request and its answer through a client and server pair.
void Exchange(TlsStream& client, TlsStream& server, std::string_view request,
              std::string_view answer) {
  ASSERT_EQ(client.WritePlaintext(Bytes(request)), request.size());
  Shuttle(client, server);
  std::vector<uint8_t> got;
  EXPECT_EQ(ReadAll(server, got), TlsIo::kNeedMore);
  EXPECT_EQ(Text(got), request);
  ASSERT_EQ(server.WritePlaintext(Bytes(answer)), answer.size());
  Shuttle(server, client);
  got.clear();
  EXPECT_EQ(ReadAll(client, got), TlsIo::kNeedMore);
  EXPECT_EQ(Text(got), answer);
}

// A connection quiet between requests (parked) gives its streams' buffers
// back; the next exchange takes them again and works both ways.
TEST_F(TlsStreamTest, AQuietStreamGivesItsBuffersBackAndWorksAfter) {
  TlsStream server = NewServer();
  TlsStream client = NewClient();
  EXPECT_FALSE(server.Quiet());  // no handshake yet
  PumpHandshake(client, server);
  ASSERT_TRUE(server.handshake_done()) << server.error().reason;
  Exchange(client, server, "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_TRUE(server.Quiet());
  ASSERT_TRUE(client.Quiet());
  EXPECT_GT(server.ciphertext_buffers_allocated(), 0u);
  EXPECT_GT(client.ciphertext_buffers_allocated(), 0u);
  server.ReleaseIdleMemory();
  client.ReleaseIdleMemory();
  EXPECT_EQ(server.ciphertext_buffers_allocated(), 0u);
  EXPECT_EQ(client.ciphertext_buffers_allocated(), 0u);
  EXPECT_TRUE(server.Quiet());
  for (int i = 0; i < 3; ++i) {
    Exchange(client, server, "GET /again HTTP/1.1\r\n\r\n", std::string(40000, 'x'));
    server.ReleaseIdleMemory();
    client.ReleaseIdleMemory();
  }
}

// Bytes waiting anywhere (to send, to decrypt, decrypted and not read yet)
// make a stream not quiet, and releasing then keeps every one of them.
TEST_F(TlsStreamTest, AStreamWithBytesWaitingIsNotQuietAndKeepsThem) {
  TlsStream server = NewServer();
  TlsStream client = NewClient();
  PumpHandshake(client, server);
  ASSERT_TRUE(server.handshake_done()) << server.error().reason;
  const std::string request = "GET /waiting HTTP/1.1\r\nHost: example.test\r\n\r\n";
  ASSERT_EQ(client.WritePlaintext(Bytes(request)), request.size());
  EXPECT_FALSE(client.Quiet());  // ciphertext to send
  client.ReleaseIdleMemory();
  Shuttle(client, server);
  EXPECT_TRUE(client.Quiet());
  EXPECT_FALSE(server.Quiet());  // ciphertext to decrypt
  server.ReleaseIdleMemory();
  uint8_t first[5];
  TlsRead r = server.ReadPlaintext(first);
  ASSERT_EQ(r.status, TlsIo::kOk);
  ASSERT_EQ(r.bytes, sizeof first);
  EXPECT_FALSE(server.Quiet());  // the rest of the record, decrypted
  server.ReleaseIdleMemory();
  std::vector<uint8_t> rest;
  EXPECT_EQ(ReadAll(server, rest), TlsIo::kNeedMore);
  EXPECT_EQ(std::string(first, first + sizeof first) + Text(rest), request);
  EXPECT_TRUE(server.Quiet());
  EXPECT_TRUE(server.Shutdown() != TlsIo::kError);
  EXPECT_FALSE(server.Quiet());  // closing
}

// A record cut after its header, or inside its body, when the connection
// goes quiet: the stream is not quiet (OpenSSL holds the header: freeing its
// buffer then was CVE-2024-4741) and the record arrives whole afterwards.
TEST_F(TlsStreamTest, ARecordCutShortIsNotQuietAndArrivesWhole) {
  for (size_t cut : {size_t{5}, size_t{20}}) {
    TlsStream server = NewServer();
    TlsStream client = NewClient();
    PumpHandshake(client, server);
    ASSERT_TRUE(server.handshake_done()) << server.error().reason;
    const std::string request = "GET /cut HTTP/1.1\r\nHost: example.test\r\n\r\n";
    ASSERT_EQ(client.WritePlaintext(Bytes(request)), request.size());
    auto record = client.PendingCiphertext();
    ASSERT_GT(record.size(), cut);
    ASSERT_EQ(server.FeedCiphertext(record.first(cut)), cut);
    client.ConsumeCiphertext(cut);
    std::vector<uint8_t> got;
    EXPECT_EQ(ReadAll(server, got), TlsIo::kNeedMore);
    EXPECT_TRUE(got.empty());
    EXPECT_FALSE(server.Quiet()) << "cut at " << cut;
    server.ReleaseIdleMemory();
    Shuttle(client, server);
    EXPECT_EQ(ReadAll(server, got), TlsIo::kNeedMore);
    EXPECT_EQ(Text(got), request) << "cut at " << cut;
    EXPECT_TRUE(server.Quiet());
  }
}

TEST_F(TlsStreamTest, WritesNothingBeforeTheHandshake) {
  TlsStream client = NewClient();
  EXPECT_EQ(client.WritePlaintext(Bytes("early")), 0u);
  EXPECT_FALSE(client.failed());
}

// 1 MiB each way at once, through bounded buffers: the writer is held back
// (WritePlaintext takes less) and never holds more than the documented bound.
TEST_F(TlsStreamTest, LargeTransferBothWaysWithBoundedBuffers) {
  TlsStream server = NewServer();
  TlsStream client = NewClient();
  PumpHandshake(client, server);
  ASSERT_TRUE(client.handshake_done() && server.handshake_done());

  constexpr size_t kSize = 1 << 20;
  std::vector<uint8_t> up(kSize), down(kSize);
  std::mt19937 rng(42);
  for (auto& b : up) b = static_cast<uint8_t>(rng());
  for (auto& b : down) b = static_cast<uint8_t>(rng());
  std::vector<uint8_t> got_up, got_down;
  size_t sent_up = 0, sent_down = 0;
  bool held_back = false;
  for (int i = 0; i < 100000 && (got_up.size() < kSize || got_down.size() < kSize); ++i) {
    size_t n = client.WritePlaintext(std::span(up).subspan(sent_up));
    if (sent_up + n < kSize) held_back = true;
    sent_up += n;
    sent_down += server.WritePlaintext(std::span(down).subspan(sent_down));
    ASSERT_LE(client.pending_ciphertext_bytes(), TlsStream::kCiphertextOutCapacity);
    ASSERT_LE(server.pending_ciphertext_bytes(), TlsStream::kCiphertextOutCapacity);
    // Move only part of what is pending, like a slow socket.
    auto c = client.PendingCiphertext();
    size_t fed = server.FeedCiphertext(c.first(std::min<size_t>(c.size(), 7000)));
    client.ConsumeCiphertext(fed);
    auto s = server.PendingCiphertext();
    fed = client.FeedCiphertext(s.first(std::min<size_t>(s.size(), 9000)));
    server.ConsumeCiphertext(fed);
    ASSERT_NE(ReadAll(server, got_up), TlsIo::kError) << server.error().reason;
    ASSERT_NE(ReadAll(client, got_down), TlsIo::kError) << client.error().reason;
  }
  EXPECT_TRUE(held_back);
  ASSERT_EQ(got_up.size(), kSize);
  ASSERT_EQ(got_down.size(), kSize);
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);
}

// The caller sends straight from PendingCiphertext (an io_uring send may be in
// flight): the view must not move or change while more is written.
TEST_F(TlsStreamTest, PendingViewStaysPutUntilConsumed) {
  TlsStream server = NewServer();
  TlsStream client = NewClient();
  PumpHandshake(client, server);
  ASSERT_TRUE(client.handshake_done() && server.handshake_done());
  ASSERT_EQ(client.WritePlaintext(Bytes("first")), 5u);
  auto view = client.PendingCiphertext();
  ASSERT_FALSE(view.empty());
  const std::vector<uint8_t> copy(view.begin(), view.end());
  std::vector<uint8_t> more(8000, 'x');
  ASSERT_EQ(client.WritePlaintext(more), more.size());
  auto again = client.PendingCiphertext();
  ASSERT_GE(again.size(), copy.size());
  EXPECT_EQ(again.data(), view.data());
  EXPECT_TRUE(std::equal(copy.begin(), copy.end(), view.begin()));
  Shuttle(client, server);
  std::vector<uint8_t> got;
  EXPECT_EQ(ReadAll(server, got), TlsIo::kNeedMore);
  EXPECT_EQ(got.size(), 5 + more.size());
}

TEST_F(TlsStreamTest, ShutdownBeforeHandshakeSendsNothing) {
  TlsStream client = NewClient();
  EXPECT_EQ(client.Shutdown(), TlsIo::kOk);
  EXPECT_EQ(client.pending_ciphertext_bytes(), 0u);
  EXPECT_FALSE(client.failed());
}

// A stream may outlive its context: TLS 1.3 tickets arriving later still have
// a cache to go to.
TEST_F(TlsStreamTest, ClientStreamOutlivesItsContext) {
  TlsStream client = NewClient();
  std::weak_ptr<const TlsClientContext> weak = client_ctx_;
  client_ctx_.reset();
  EXPECT_TRUE(weak.expired());
  SslCtxPtr server_ctx = testing::MakeTestServerCtx(leaf_);  // issues tickets
  auto server = TlsStream::Create(SslPtr(SSL_new(server_ctx.get())), TlsRole::kServer);
  ASSERT_TRUE(server.ok());
  PumpHandshake(client, *server);
  ASSERT_TRUE(client.handshake_done()) << client.error().reason;
  ASSERT_EQ(server->WritePlaintext(Bytes("hi")), 2u);
  Shuttle(*server, client);
  std::vector<uint8_t> got;
  EXPECT_EQ(ReadAll(client, got), TlsIo::kNeedMore);  // tickets stored, no crash
  EXPECT_EQ(Text(got), "hi");
}

TEST_F(TlsStreamTest, FeedTakesOnlyWhatFits) {
  TlsStream server = NewServer();
  std::vector<uint8_t> lots(3 * TlsStream::kCiphertextInCapacity, 0x16);
  EXPECT_EQ(server.FeedCiphertext(lots), TlsStream::kCiphertextInCapacity);
  EXPECT_EQ(server.FeedCiphertext(lots), 0u);
}

TEST_F(TlsStreamTest, CloseNotifyBothWays) {
  TlsStream server = NewServer();
  TlsStream client = NewClient();
  PumpHandshake(client, server);
  ASSERT_TRUE(client.handshake_done() && server.handshake_done());

  ASSERT_EQ(client.WritePlaintext(Bytes("last words")), 10u);
  EXPECT_EQ(client.Shutdown(), TlsIo::kOk);
  EXPECT_EQ(client.WritePlaintext(Bytes("more")), 0u);  // nothing after close_notify
  Shuttle(client, server);
  std::vector<uint8_t> got;
  EXPECT_EQ(ReadAll(server, got), TlsIo::kClosed);
  EXPECT_EQ(Text(got), "last words");
  EXPECT_TRUE(server.peer_closed());
  EXPECT_FALSE(server.failed());
  EXPECT_EQ(server.Shutdown(), TlsIo::kOk);
  Shuttle(server, client);
  got.clear();
  EXPECT_EQ(ReadAll(client, got), TlsIo::kClosed);
  EXPECT_FALSE(client.failed());
}

TEST_F(TlsStreamTest, EofWithoutCloseNotifyIsTruncation) {
  TlsStream server = NewServer();
  TlsStream client = NewClient();
  PumpHandshake(client, server);
  ASSERT_TRUE(client.handshake_done() && server.handshake_done());
  ASSERT_EQ(client.WritePlaintext(Bytes("partial")), 7u);
  Shuttle(client, server);
  server.FeedEof();
  std::vector<uint8_t> got;
  EXPECT_EQ(ReadAll(server, got), TlsIo::kError);
  EXPECT_EQ(Text(got), "partial");
  EXPECT_EQ(server.error().kind, TlsErrorKind::kTruncated);
  EXPECT_EQ(server.error().reason, "connection closed without TLS close_notify (truncated)");
}

TEST_F(TlsStreamTest, EofDuringHandshake) {
  TlsStream server = NewServer();
  server.FeedEof();
  EXPECT_EQ(server.Handshake(), TlsIo::kError);
  EXPECT_EQ(server.error().kind, TlsErrorKind::kTruncated);
  EXPECT_EQ(server.error().reason, "connection closed during the TLS handshake");
}

// Found by fuzz_tls_client_stream: a warning close_notify alert before the
// handshake finished left the stream neither failed nor done.
TEST_F(TlsStreamTest, CloseNotifyDuringHandshakeIsAnError) {
  const uint8_t close_notify[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00};
  TlsStream client = NewClient();
  EXPECT_EQ(client.Handshake(), TlsIo::kNeedMore);
  ASSERT_EQ(client.FeedCiphertext(close_notify), sizeof close_notify);
  EXPECT_EQ(client.Handshake(), TlsIo::kError);
  EXPECT_EQ(client.error().kind, TlsErrorKind::kProtocol);
  EXPECT_EQ(client.error().peer_alert, 0);
  EXPECT_EQ(client.error().reason,
            "the peer closed the connection during the TLS handshake (close_notify)");
  TlsStream server = NewServer();
  server.FeedCiphertext(close_notify);
  EXPECT_EQ(server.Handshake(), TlsIo::kError);
  EXPECT_FALSE(server.error().reason.empty());
}

TEST_F(TlsStreamTest, AlpnNotOfferedIsHttp11) {
  TlsStream server = NewServer();
  TlsStream client = NewRawClient("");
  PumpHandshake(client, server);
  ASSERT_TRUE(server.handshake_done()) << server.error().reason;
  EXPECT_EQ(server.info().alpn, "");
}

TEST_F(TlsStreamTest, AlpnH2AndHttp11ChoosesHttp11) {
  TlsStream server = NewServer();
  TlsStream client = NewRawClient(std::string("\x02h2\x08http/1.1", 12));
  PumpHandshake(client, server);
  ASSERT_TRUE(server.handshake_done()) << server.error().reason;
  EXPECT_EQ(server.info().alpn, "http/1.1");
  EXPECT_EQ(client.info().alpn, "http/1.1");
}

TEST_F(TlsStreamTest, AlpnH2OnlyIsRefusedWithAlert120) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    TlsStream server = NewServer();
    TlsStream client = NewRawClient(std::string("\x02h2", 3), version);
    PumpHandshake(client, server);
    EXPECT_FALSE(server.handshake_done());
    ASSERT_TRUE(server.failed());
    EXPECT_EQ(server.error().kind, TlsErrorKind::kNoApplicationProtocol);
    EXPECT_EQ(server.error().reason,
              "the client offered ALPN without http/1.1 (HTTP/2 is not interceptable yet)");
    ASSERT_TRUE(client.failed());
    EXPECT_EQ(client.error().peer_alert, 120);  // no_application_protocol
    EXPECT_EQ(client.error().kind, TlsErrorKind::kNoApplicationProtocol);
  }
}

TEST_F(TlsStreamTest, GarbageIsACleanError) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    TlsStream server = NewServer();
    std::vector<uint8_t> junk(1 + rng() % 3000);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    if (round % 2) junk[0] = 0x16;  // looks like a handshake record
    server.FeedCiphertext(junk);
    TlsIo r = server.Handshake();
    EXPECT_NE(r, TlsIo::kOk);
    if (r == TlsIo::kError) {
      EXPECT_FALSE(server.error().reason.empty());
      EXPECT_EQ(server.error().kind, TlsErrorKind::kProtocol) << server.error().reason;
      EXPECT_EQ(server.FeedCiphertext(junk), 0u);  // dead: takes nothing more
      EXPECT_EQ(server.Handshake(), TlsIo::kError);
    }
  }
}

TEST_F(TlsStreamTest, PlainHttpIsNotTls) {
  TlsStream server = NewServer();
  server.FeedCiphertext(Bytes("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"));
  EXPECT_EQ(server.Handshake(), TlsIo::kError);
  EXPECT_EQ(server.error().kind, TlsErrorKind::kProtocol);
  EXPECT_EQ(server.error().reason, "not TLS (or a TLS version before 1.0)");
  EXPECT_FALSE(server.error().detail.empty());
}

TEST_F(TlsStreamTest, ServerRefusesLeafWithoutKey) {
  auto s = server_ctx_->NewStream(leaf_.cert.get(), nullptr);
  EXPECT_FALSE(s.ok());
  KeyCert other = MakeLeaf(root_, "other.test");
  auto mismatch = server_ctx_->NewStream(leaf_.cert.get(), other.key.get());
  EXPECT_FALSE(mismatch.ok());
}

}  // namespace
}  // namespace egressd::tls
