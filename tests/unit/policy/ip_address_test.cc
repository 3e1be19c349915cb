#include "policy/ip_address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace egressd::policy {
namespace {

TEST(IpAddress, ParsesIpv4AsV4Mapped) {
  auto a = IpAddress::Parse("1.2.3.4");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_v4());
  std::array<uint8_t, 16> want{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
  EXPECT_EQ(a->bytes, want);
  EXPECT_EQ(a->ToString(), "1.2.3.4");
}

TEST(IpAddress, ParsesIpv6) {
  auto a = IpAddress::Parse("::1");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->is_v4());
  EXPECT_EQ(a->bytes[15], 1);
  EXPECT_EQ(a->ToString(), "::1");
  auto b = IpAddress::Parse("2001:DB8:0:0:0:0:0:1");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->ToString(), "2001:db8::1");
}

TEST(IpAddress, V4MappedTextEqualsDottedQuad) {
  auto mapped = IpAddress::Parse("::ffff:1.2.3.4");
  ASSERT_TRUE(mapped);
  EXPECT_TRUE(mapped->is_v4());
  EXPECT_EQ(*mapped, *IpAddress::Parse("1.2.3.4"));
  EXPECT_EQ(mapped->ToString(), "1.2.3.4");
}

TEST(IpAddress, RejectsWhatIsNoBareAddress) {
  for (const char* bad :
       {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "010.0.0.1", "0x1.2.3.4", " 1.2.3.4", "1.2.3.4 ",
        "[::1]", "1.2.3.4:80", "fe80::1%eth0", "::1/128", "example.com", ":::", "1.2.3.4\n"}) {
    EXPECT_FALSE(IpAddress::Parse(bad)) << bad;
  }
  EXPECT_FALSE(IpAddress::Parse(std::string(100, '1')));
}

TEST(IpAddress, ParseStopsAtStringViewEnd) {
  std::string_view text("10.0.0.1junk", 8);
  auto a = IpAddress::Parse(text);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->ToString(), "10.0.0.1");
}

TEST(IpAddress, FromV4TakesNetworkOrder) {
  IpAddress a = IpAddress::FromV4(htonl(0xC0000201));
  EXPECT_TRUE(a.is_v4());
  EXPECT_EQ(a.ToString(), "192.0.2.1");
}

TEST(IpAddress, FromV6CopiesBytes) {
  const uint8_t raw[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x2a};
  IpAddress a = IpAddress::FromV6(raw);
  EXPECT_FALSE(a.is_v4());
  EXPECT_EQ(a.ToString(), "fd00::2a");
  const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
  EXPECT_TRUE(IpAddress::FromV6(mapped).is_v4());
  EXPECT_EQ(IpAddress::FromV6(mapped), *IpAddress::Parse("10.0.0.1"));
}

TEST(IpAddress, IsV4OnlyForTheMappedPrefix) {
  EXPECT_FALSE(IpAddress::Parse("::")->is_v4());
  EXPECT_FALSE(IpAddress::Parse("::1.2.3.4")->is_v4());  // deprecated v4-compatible form
  EXPECT_FALSE(IpAddress::Parse("::fffe:1.2.3.4")->is_v4());
  EXPECT_FALSE(IpAddress::Parse("64:ff9b::1.2.3.4")->is_v4());
  EXPECT_TRUE(IpAddress::Parse("0.0.0.0")->is_v4());
}

TEST(IpAddress, OrdersByBytes) {
  EXPECT_LT(*IpAddress::Parse("::1"), *IpAddress::Parse("10.0.0.1"));  // ::1 < ::ffff:...
  EXPECT_LT(*IpAddress::Parse("10.0.0.1"), *IpAddress::Parse("10.0.0.2"));
  EXPECT_NE(*IpAddress::Parse("10.0.0.1"), *IpAddress::Parse("10.0.0.2"));
  EXPECT_EQ(IpAddress{}, *IpAddress::Parse("::"));
}

}  // namespace
}  // namespace egressd::policy
