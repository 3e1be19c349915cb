#include "userspace/protocol/http_upgrade.h"

#include <gtest/gtest.h>

namespace egressd::protocol {
namespace {

TEST(HttpUpgrade, NoUpgradeIsUnchanged) {
  HeaderFields f = {{"Host", "a"}, {"Connection", "keep-alive"}};
  HeaderFields before = f;
  auto r = KeepOnlyWebSocketUpgrade(f);
  EXPECT_FALSE(r.websocket);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(f, before);
}

TEST(HttpUpgrade, WebSocketIsKeptAsIs) {
  HeaderFields f = {{"Host", "a"}, {"Upgrade", "WebSocket"}, {"Connection", "Upgrade"}};
  HeaderFields before = f;
  auto r = KeepOnlyWebSocketUpgrade(f);
  EXPECT_TRUE(r.websocket);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(f, before);
}

TEST(HttpUpgrade, AListWithEmptyElementsIsWrittenAsItsOneProtocol) {
  // Found by fuzz_http_request: ", websocket" went upstream as received.
  HeaderFields f = {{"Host", "a"}, {"Upgrade", ", websocket"}, {"Connection", "Upgrade"}};
  auto r = KeepOnlyWebSocketUpgrade(f);
  EXPECT_TRUE(r.websocket);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(f, (HeaderFields{{"Host", "a"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"}}));
}

TEST(HttpUpgrade, H2cIsRemovedWithItsConnectionOption) {
  HeaderFields f = {{"Host", "a"},
                    {"Connection", "Upgrade, HTTP2-Settings"},
                    {"Upgrade", "h2c"},
                    {"HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA"}};
  auto r = KeepOnlyWebSocketUpgrade(f);
  EXPECT_FALSE(r.websocket);
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(f, (HeaderFields{{"Host", "a"},
                             {"Connection", "HTTP2-Settings"},
                             {"HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA"}}));
}

TEST(HttpUpgrade, ConnectionWithOnlyUpgradeGoes) {
  HeaderFields f = {{"Upgrade", "TLS/1.0"}, {"Host", "a"}, {"connection", "upgrade"}};
  auto r = KeepOnlyWebSocketUpgrade(f);
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(f, (HeaderFields{{"Host", "a"}}));
}

TEST(HttpUpgrade, OtherTokensGoWebSocketStays) {
  HeaderFields f = {{"Host", "a"},
                    {"Upgrade", "h2c, websocket"},
                    {"Upgrade", "foo/2"},
                    {"Connection", "Upgrade"}};
  auto r = KeepOnlyWebSocketUpgrade(f);
  EXPECT_TRUE(r.websocket);
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(f, (HeaderFields{{"Host", "a"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"}}));
}

TEST(HttpUpgrade, SecondWebSocketTokenGoes) {
  HeaderFields f = {{"Host", "a"}, {"Upgrade", "websocket, WebSocket"}, {"Connection", "upgrade"}};
  auto r = KeepOnlyWebSocketUpgrade(f);
  EXPECT_TRUE(r.websocket);
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(f[1], (std::pair<std::string, std::string>{"Upgrade", "websocket"}));
}

TEST(HttpUpgrade, EmptyUpgradeFieldGoes) {
  HeaderFields f = {{"Host", "a"}, {"Upgrade", ","}};
  auto r = KeepOnlyWebSocketUpgrade(f);
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(f, (HeaderFields{{"Host", "a"}}));
}

}  // namespace
}  // namespace egressd::protocol
