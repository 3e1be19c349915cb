#include "userspace/protocol/tls_client_hello.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace egressd::protocol {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes ReadTestData(const std::string& name) {
  std::ifstream in(std::string(PROTOCOL_TESTDATA_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void Put16(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void Put24(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 16));
  Put16(b, v & 0xffff);
}

Bytes Ext(uint16_t type, const Bytes& body) {
  Bytes b;
  Put16(b, type);
  Put16(b, body.size());
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

// server_name extension with the given (type, name) entries.
Bytes SniExt(const std::vector<std::pair<uint8_t, std::string>>& names) {
  Bytes list;
  for (const auto& [type, name] : names) {
    list.push_back(type);
    Put16(list, name.size());
    list.insert(list.end(), name.begin(), name.end());
  }
  Bytes body;
  Put16(body, list.size());
  body.insert(body.end(), list.begin(), list.end());
  return Ext(0, body);
}

// A handshake message (type 1 + length + body) for a minimal ClientHello.
Bytes HelloMessage(const Bytes& extensions, bool with_ext_block = true) {
  Bytes body = {0x03, 0x03};
  body.insert(body.end(), 32, 0xab);  // random
  body.push_back(0);                  // session_id
  Put16(body, 2);
  body.insert(body.end(), {0x13, 0x01});  // TLS_AES_128_GCM_SHA256
  body.insert(body.end(), {1, 0});        // compression: null
  if (with_ext_block) {
    Put16(body, extensions.size());
    body.insert(body.end(), extensions.begin(), extensions.end());
  }
  Bytes msg = {0x01};
  Put24(msg, body.size());
  msg.insert(msg.end(), body.begin(), body.end());
  return msg;
}

// Wraps a handshake message into handshake records of at most `fragment` bytes.
Bytes Records(const Bytes& msg, size_t fragment) {
  Bytes out;
  for (size_t off = 0; off < msg.size(); off += fragment) {
    size_t n = std::min(fragment, msg.size() - off);
    out.insert(out.end(), {0x16, 0x03, 0x01});
    Put16(out, n);
    out.insert(out.end(), msg.begin() + off, msg.begin() + off + n);
  }
  return out;
}

// The handshake message inside a (single-record) capture.
Bytes MessageOf(const Bytes& record) {
  return Bytes(record.begin() + 5, record.end());
}

TEST(TlsClientHello, RealOpenSslHelloWithSni) {
  Bytes hello = ReadTestData("openssl_clienthello_sni.bin");
  ASSERT_GT(hello.size(), 100u);
  auto r = ParseClientHello(hello);
  ASSERT_EQ(r.status, ClientHelloStatus::kOk) << r.error;
  ASSERT_TRUE(r.sni.has_value());
  EXPECT_EQ(*r.sni, "example.com");  // sent as "Example.COM", lowercased
}

TEST(TlsClientHello, RealOpenSslHelloWithoutSni) {
  auto r = ParseClientHello(ReadTestData("openssl_clienthello_nosni.bin"));
  ASSERT_EQ(r.status, ClientHelloStatus::kOk) << r.error;
  EXPECT_FALSE(r.sni.has_value());
}

TEST(TlsClientHello, RealOpenSslTls12Hello) {
  auto r = ParseClientHello(ReadTestData("openssl_clienthello_tls12_sni.bin"));
  ASSERT_EQ(r.status, ClientHelloStatus::kOk) << r.error;
  EXPECT_EQ(r.sni.value_or(""), "api.example.org");
}

TEST(TlsClientHello, TrailingRecordsAreIgnored) {
  Bytes hello = ReadTestData("openssl_clienthello_sni.bin");
  Bytes more = hello;
  more.insert(more.end(), {0x14, 0x03, 0x03, 0x00, 0x01, 0x01});  // ChangeCipherSpec
  auto r = ParseClientHello(more);
  ASSERT_EQ(r.status, ClientHelloStatus::kOk) << r.error;
  EXPECT_EQ(*r.sni, "example.com");
}

TEST(TlsClientHello, EveryTruncationNeedsMore) {
  for (const char* file : {"openssl_clienthello_sni.bin", "openssl_clienthello_nosni.bin",
                           "openssl_clienthello_tls12_sni.bin"}) {
    Bytes hello = ReadTestData(file);
    for (size_t n = 0; n < hello.size(); ++n) {
      auto r = ParseClientHello(std::span<const uint8_t>(hello).first(n));
      EXPECT_EQ(r.status, ClientHelloStatus::kNeedMore) << file << " prefix " << n;
    }
  }
}

TEST(TlsClientHello, FragmentedAcrossRecords) {
  Bytes msg = MessageOf(ReadTestData("openssl_clienthello_sni.bin"));
  for (size_t fragment : {1, 2, 3, 4, 5, 7, 64, 100, 311}) {
    Bytes records = Records(msg, fragment);
    auto r = ParseClientHello(records);
    ASSERT_EQ(r.status, ClientHelloStatus::kOk) << "fragment " << fragment << ": " << r.error;
    EXPECT_EQ(r.sni.value_or(""), "example.com");
    // Every truncation of the fragmented form asks for more.
    for (size_t n = 0; n < records.size(); ++n) {
      auto t = ParseClientHello(std::span<const uint8_t>(records).first(n));
      ASSERT_EQ(t.status, ClientHelloStatus::kNeedMore) << "fragment " << fragment << " n " << n;
    }
  }
}

TEST(TlsClientHello, NotTls) {
  auto s = [](const Bytes& b) { return ParseClientHello(b).status; };
  EXPECT_EQ(s({'G', 'E', 'T', ' ', '/'}), ClientHelloStatus::kNotTls);
  EXPECT_EQ(s({0x80, 0x2e, 0x01, 0x00, 0x02}), ClientHelloStatus::kNotTls);  // SSLv2 hello
  EXPECT_EQ(s({0x16, 0x02}), ClientHelloStatus::kNotTls);
  EXPECT_EQ(s({0x16, 0x03, 0x09}), ClientHelloStatus::kNotTls);
  EXPECT_EQ(s({0x16, 0x00, 0x00, 0x00, 0x00}), ClientHelloStatus::kNotTls);
  EXPECT_EQ(s({0x16}), ClientHelloStatus::kNeedMore);
  EXPECT_EQ(s({0x16, 0x03}), ClientHelloStatus::kNeedMore);
  EXPECT_EQ(s({}), ClientHelloStatus::kNeedMore);
}

TEST(TlsClientHello, HostileLengths) {
  auto s = [](const Bytes& b) { return ParseClientHello(b).status; };
  // Record longer than 2^14.
  EXPECT_EQ(s({0x16, 0x03, 0x01, 0xff, 0xff, 0x01}), ClientHelloStatus::kMalformed);
  EXPECT_EQ(s({0x16, 0x03, 0x01, 0x40, 0x01}), ClientHelloStatus::kMalformed);
  // Empty record.
  EXPECT_EQ(s({0x16, 0x03, 0x01, 0x00, 0x00}), ClientHelloStatus::kMalformed);
  // Handshake message announcing 16 MiB.
  EXPECT_EQ(s({0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff}),
            ClientHelloStatus::kMalformed);
  // Empty ClientHello.
  EXPECT_EQ(s({0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00}),
            ClientHelloStatus::kMalformed);
  // Not a ClientHello (ServerHello type 2).
  EXPECT_EQ(s({0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x10}),
            ClientHelloStatus::kMalformed);
  // A large but legal announced length just needs more bytes.
  EXPECT_EQ(s({0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x40, 0x00}),
            ClientHelloStatus::kNeedMore);

  // Session id longer than 32, cipher suites odd / running past the message.
  Bytes msg = HelloMessage(SniExt({{0, "a.com"}}));
  Bytes bad = msg;
  bad[4 + 34] = 33;
  EXPECT_EQ(s(Records(bad, 1000)), ClientHelloStatus::kMalformed);
  bad = msg;
  bad[4 + 36] = 3;  // cipher suites length 3
  EXPECT_EQ(s(Records(bad, 1000)), ClientHelloStatus::kMalformed);
  bad = msg;
  bad[4 + 35] = 0xff;  // cipher suites length > message
  EXPECT_EQ(s(Records(bad, 1000)), ClientHelloStatus::kMalformed);
}

TEST(TlsClientHello, ExtensionsLengthMismatch) {
  Bytes ext = SniExt({{0, "a.com"}});
  Bytes msg = HelloMessage(ext);
  // Extensions block claims one byte more than present.
  size_t ext_len_at = msg.size() - ext.size() - 2;
  msg[ext_len_at + 1]++;
  EXPECT_EQ(ParseClientHello(Records(msg, 1000)).status, ClientHelloStatus::kMalformed);
  // One extension's length runs past the block.
  Bytes msg2 = HelloMessage(ext);
  msg2[ext_len_at + 2 + 3]++;
  EXPECT_EQ(ParseClientHello(Records(msg2, 1000)).status, ClientHelloStatus::kMalformed);
}

TEST(TlsClientHello, NoExtensionsBlock) {
  auto r = ParseClientHello(Records(HelloMessage({}, false), 1000));
  ASSERT_EQ(r.status, ClientHelloStatus::kOk) << r.error;
  EXPECT_FALSE(r.sni);
}

TEST(TlsClientHello, SniValidation) {
  auto sni = [](const std::string& name) {
    return ParseClientHello(Records(HelloMessage(SniExt({{0, name}})), 1000));
  };
  EXPECT_EQ(sni("WWW.Example.com").sni.value_or(""), "www.example.com");
  EXPECT_EQ(sni("_acme.a-b.example").sni.value_or(""), "_acme.a-b.example");
  EXPECT_EQ(sni(std::string(63, 'a') + ".com").status, ClientHelloStatus::kOk);
  // A fully qualified name is judged without its trailing dot, like a Host.
  EXPECT_EQ(sni("Allowed.Test.").sni.value_or(""), "allowed.test");
  for (const std::string& bad :
       {std::string(""), std::string("a b.com"), std::string("a\0b.com", 7), std::string("a.com.."),
        std::string("."), std::string(".a.com"), std::string("a..com"), std::string("a/b"),
        std::string("a:443"), std::string("\xc3\xa9.com"), std::string(64, 'a') + ".com",
        std::string(256, 'a')}) {
    auto r = sni(bad);
    EXPECT_EQ(r.status, ClientHelloStatus::kMalformed) << "name '" << bad << "'";
    EXPECT_FALSE(r.error.empty());
  }
  // 255 bytes total, labels of 63.
  std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                        std::string(63, 'c') + "." + std::string(63, 'd');
  ASSERT_EQ(longest.size(), 255u);
  EXPECT_EQ(sni(longest).status, ClientHelloStatus::kOk);
}

TEST(TlsClientHello, MultipleHostNamesRejected) {
  auto r = ParseClientHello(Records(HelloMessage(SniExt({{0, "a.com"}, {0, "b.com"}})), 1000));
  EXPECT_EQ(r.status, ClientHelloStatus::kMalformed);
  EXPECT_EQ(r.error, "more than one SNI host_name");
}

TEST(TlsClientHello, UnknownNameTypeSkippedButHostNameRequired) {
  auto r = ParseClientHello(Records(HelloMessage(SniExt({{7, "xx"}, {0, "a.com"}})), 1000));
  ASSERT_EQ(r.status, ClientHelloStatus::kOk) << r.error;
  EXPECT_EQ(*r.sni, "a.com");
  EXPECT_EQ(ParseClientHello(Records(HelloMessage(SniExt({{7, "xx"}})), 1000)).status,
            ClientHelloStatus::kMalformed);
  EXPECT_EQ(ParseClientHello(Records(HelloMessage(SniExt({})), 1000)).status,
            ClientHelloStatus::kMalformed);
}

TEST(TlsClientHello, DuplicateExtensionsRejected) {
  Bytes two_sni = SniExt({{0, "a.com"}});
  Bytes ext = two_sni;
  ext.insert(ext.end(), two_sni.begin(), two_sni.end());
  auto r = ParseClientHello(Records(HelloMessage(ext), 1000));
  EXPECT_EQ(r.status, ClientHelloStatus::kMalformed);
  EXPECT_EQ(r.error, "duplicate extension");

  Bytes dup_other = Ext(0x002b, {0x02, 0x03, 0x04});
  Bytes ext2 = SniExt({{0, "a.com"}});
  ext2.insert(ext2.end(), dup_other.begin(), dup_other.end());
  ext2.insert(ext2.end(), dup_other.begin(), dup_other.end());
  EXPECT_EQ(ParseClientHello(Records(HelloMessage(ext2), 1000)).status,
            ClientHelloStatus::kMalformed);
}

TEST(TlsClientHello, NonHandshakeRecordInsideHello) {
  Bytes msg = MessageOf(ReadTestData("openssl_clienthello_sni.bin"));
  Bytes records = Records(msg, 100);
  Bytes bad = records;
  bad[105] = 0x17;  // second record: application data
  EXPECT_EQ(ParseClientHello(bad).status, ClientHelloStatus::kMalformed);
  // Even when only the first byte of the second record has arrived.
  EXPECT_EQ(ParseClientHello(std::span<const uint8_t>(bad).first(106)).status,
            ClientHelloStatus::kMalformed);
  bad = records;
  bad[106] = 0x02;  // second record: bad version
  EXPECT_EQ(ParseClientHello(bad).status, ClientHelloStatus::kMalformed);
}

TEST(TlsClientHello, EveryByteFlipNeverCrashes) {
  Bytes hello = ReadTestData("openssl_clienthello_sni.bin");
  for (size_t i = 0; i < hello.size(); ++i) {
    for (uint8_t v : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
      Bytes b = hello;
      b[i] = v;
      auto r = ParseClientHello(b);
      if (r.status == ClientHelloStatus::kOk && r.sni) {
        EXPECT_TRUE(IsValidSniHostName(*r.sni));
      }
    }
  }
}

}  // namespace
}  // namespace egressd::protocol
