#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "userspace/dns/resolver.h"

namespace egressd::dns {
namespace {

TEST(ParseSocketAddress, AcceptsAddressesWithAndWithoutPort) {
  auto a = ParseSocketAddress("127.0.0.1:5353", 53);
  ASSERT_TRUE(a);
  EXPECT_EQ(FormatSocketAddress(*a), "127.0.0.1:5353");
  a = ParseSocketAddress("10.0.0.2", 53);
  ASSERT_TRUE(a);
  EXPECT_EQ(FormatSocketAddress(*a), "10.0.0.2:53");
  a = ParseSocketAddress("[::1]:54", 53);
  ASSERT_TRUE(a);
  EXPECT_EQ(FormatSocketAddress(*a), "[::1]:54");
  a = ParseSocketAddress("::1", 53);
  ASSERT_TRUE(a);
  EXPECT_EQ(FormatSocketAddress(*a), "[::1]:53");
}

TEST(ParseSocketAddress, RejectsGarbage) {
  for (const char* bad : {"", "host.example:53", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:x", "[::1",
                          "[::1]x", "1.2.3.4:"})
    EXPECT_FALSE(ParseSocketAddress(bad, 53)) << bad;
}

}  // namespace
}  // namespace egressd::dns
