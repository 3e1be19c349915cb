#include "userspace/protocol/http_upgrade.h"

#include <gtest/gtest.h>

#include <string>

namespace egressd::protocol {
namespace {

TEST(HttpUpgrade, NoUpgradeIsUnchanged) {
  auto f = KeepOnlyWebSocketUpgrade("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_FALSE(f.websocket);
  EXPECT_FALSE(f.changed);
}

TEST(HttpUpgrade, WebSocketIsKeptAsIs) {
  auto f = KeepOnlyWebSocketUpgrade(
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n");
  EXPECT_TRUE(f.websocket);
  EXPECT_FALSE(f.changed);
}

TEST(HttpUpgrade, H2cIsRemovedWithItsConnectionOption) {
  auto f = KeepOnlyWebSocketUpgrade(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n");
  EXPECT_FALSE(f.websocket);
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.head,
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: HTTP2-Settings\r\n"
            "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n");
}

TEST(HttpUpgrade, ConnectionWithOnlyUpgradeGoes) {
  auto f = KeepOnlyWebSocketUpgrade(
      "GET / HTTP/1.1\r\nUpgrade: TLS/1.0\r\nHost: a\r\nconnection: upgrade\r\n\r\n");
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.head, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST(HttpUpgrade, OtherTokensGoWebSocketStays) {
  auto f = KeepOnlyWebSocketUpgrade(
      "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket\r\nUpgrade: foo/2\r\n"
      "Connection: Upgrade\r\n\r\n");
  EXPECT_TRUE(f.websocket);
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.head,
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
}

TEST(HttpUpgrade, EmptyLinesBeforeTheRequestLineStay) {
  auto f = KeepOnlyWebSocketUpgrade(
      "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n");
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.head, "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST(HttpUpgrade, EmptyUpgradeFieldGoes) {
  auto f = KeepOnlyWebSocketUpgrade("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: ,\r\n\r\n");
  ASSERT_TRUE(f.changed);
  EXPECT_EQ(f.head, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

TEST(HttpUpgrade, NeverLonger) {
  // Options packed without spaces stay packed.
  std::string head =
      "GET / HTTP/1.1\r\nHost:a\r\nConnection:a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,upgrade\r\n"
      "Upgrade:x\r\n\r\n";
  auto f = KeepOnlyWebSocketUpgrade(head);
  ASSERT_TRUE(f.changed);
  EXPECT_LE(f.head.size(), head.size());
  EXPECT_EQ(f.head.find("upgrade"), std::string::npos);
  EXPECT_EQ(f.head.find("Upgrade"), std::string::npos);
}

}  // namespace
}  // namespace egressd::protocol
