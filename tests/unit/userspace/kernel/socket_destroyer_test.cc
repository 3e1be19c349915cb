#include "userspace/kernel/socket_destroyer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>

namespace egressd::kernel {
namespace {

bool Loopback(const char* text) {
  uint32_t addr[4] = {};
  int family = strchr(text, ':') ? AF_INET6 : AF_INET;
  EXPECT_EQ(inet_pton(family, text, addr), 1) << text;
  return IsLoopbackPeer(family, addr);
}

TEST(IsLoopbackPeer, LoopbackRangesOnly) {
  EXPECT_TRUE(Loopback("127.0.0.1"));
  EXPECT_TRUE(Loopback("127.255.0.9"));
  EXPECT_TRUE(Loopback("::1"));
  EXPECT_TRUE(Loopback("::ffff:127.0.0.1"));
  EXPECT_TRUE(Loopback("::ffff:127.1.2.3"));
  EXPECT_FALSE(Loopback("128.0.0.1"));
  EXPECT_FALSE(Loopback("10.127.0.1"));
  EXPECT_FALSE(Loopback("0.0.0.0"));
  EXPECT_FALSE(Loopback("::"));
  EXPECT_FALSE(Loopback("::2"));
  EXPECT_FALSE(Loopback("::127.0.0.1"));  // v4-compatible, not v4-mapped
  EXPECT_FALSE(Loopback("::ffff:10.0.0.1"));
  EXPECT_FALSE(Loopback("fe80::1"));
  EXPECT_FALSE(Loopback("1::1"));
}

}  // namespace
}  // namespace egressd::kernel
