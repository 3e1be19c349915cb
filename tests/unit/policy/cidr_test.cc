#include "policy/cidr.h"

#include <gtest/gtest.h>

namespace egressd::policy {
namespace {

Cidr MustParse(const char* text) {
  std::string error;
  auto c = ParseCidr(text, &error);
  EXPECT_TRUE(c) << text << ": " << error;
  return c.value_or(Cidr{});
}

std::string ErrorOf(const char* text) {
  std::string error;
  auto c = ParseCidr(text, &error);
  EXPECT_FALSE(c) << text << " parsed as " << (c ? c->ToString() : "");
  return error;
}

IpAddress Ip(const char* text) {
  return *IpAddress::Parse(text);
}

TEST(ParseCidr, Ipv4Block) {
  Cidr c = MustParse("10.0.0.0/8");
  EXPECT_TRUE(c.network.is_v4());
  EXPECT_EQ(c.prefix_len, 8);
  EXPECT_EQ(c.mapped_prefix_len(), 104);
  EXPECT_EQ(c.ToString(), "10.0.0.0/8");
}

TEST(ParseCidr, Ipv6Block) {
  Cidr c = MustParse("fd00::/8");
  EXPECT_FALSE(c.network.is_v4());
  EXPECT_EQ(c.prefix_len, 8);
  EXPECT_EQ(c.mapped_prefix_len(), 8);
  EXPECT_EQ(c.ToString(), "fd00::/8");
}

TEST(ParseCidr, BareAddressIsHostRoute) {
  EXPECT_EQ(MustParse("192.0.2.7").prefix_len, 32);
  EXPECT_EQ(MustParse("192.0.2.7").mapped_prefix_len(), 128);
  EXPECT_EQ(MustParse("::1").prefix_len, 128);
  EXPECT_EQ(MustParse("::1").mapped_prefix_len(), 128);
}

TEST(ParseCidr, EdgePrefixes) {
  EXPECT_EQ(MustParse("0.0.0.0/0").prefix_len, 0);
  EXPECT_EQ(MustParse("0.0.0.0/0").mapped_prefix_len(), 96);
  EXPECT_EQ(MustParse("::/0").prefix_len, 0);
  EXPECT_EQ(MustParse("1.2.3.4/32").prefix_len, 32);
  EXPECT_EQ(MustParse("2001:db8::1/128").prefix_len, 128);
}

TEST(ParseCidr, V4MappedWrittenAsIpv6BecomesIpv4) {
  Cidr c = MustParse("::ffff:10.0.0.0/104");
  EXPECT_TRUE(c.network.is_v4());
  EXPECT_EQ(c.prefix_len, 8);
  EXPECT_EQ(c.ToString(), "10.0.0.0/8");
  EXPECT_EQ(MustParse("::ffff:0:0/96").ToString(), "0.0.0.0/0");
  EXPECT_EQ(MustParse("::ffff:1.2.3.4").ToString(), "1.2.3.4/32");
}

TEST(ParseCidr, RejectsHostBitsWithSuggestion) {
  EXPECT_EQ(ErrorOf("10.1.2.3/8"), "\"10.1.2.3/8\" has host bits set; did you mean 10.0.0.0/8?");
  EXPECT_EQ(ErrorOf("fd00::1/8"), "\"fd00::1/8\" has host bits set; did you mean fd00::/8?");
  EXPECT_EQ(ErrorOf("1.2.3.4/0"), "\"1.2.3.4/0\" has host bits set; did you mean 0.0.0.0/0?");
  EXPECT_EQ(ErrorOf("::ffff:10.1.0.0/104"),
            "\"::ffff:10.1.0.0/104\" has host bits set; did you mean ::ffff:10.0.0.0/104?");
  EXPECT_EQ(ErrorOf("::ffff:0:0/80"), "\"::ffff:0:0/80\" has host bits set; did you mean ::/80?");
  EXPECT_NE(ErrorOf("192.0.2.1/31").find("192.0.2.0/31"), std::string::npos);
}

TEST(ParseCidr, RejectsBadPrefix) {
  EXPECT_EQ(ErrorOf("10.0.0.0/33"), "\"10.0.0.0/33\": prefix length must be 0..32");
  EXPECT_EQ(ErrorOf("::/129"), "\"::/129\": prefix length must be 0..128");
  for (const char* bad : {"10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8x", "10.0.0.0/ 8",
                          "10.0.0.0/8/8", "10.0.0.0/99999999999999999999"}) {
    EXPECT_NE(ErrorOf(bad).find("prefix length"), std::string::npos) << bad;
  }
}

TEST(ParseCidr, RejectsBadAddress) {
  EXPECT_EQ(ErrorOf("example.com/8"), "\"example.com/8\" is not an IP address or CIDR");
  for (const char* bad : {"", "/8", "10.0.0/8", "[::1]/128", "10.0.0.0 /8", "fe80::1%eth0/64"})
    EXPECT_NE(ErrorOf(bad).find("is not an IP address"), std::string::npos) << bad;
}

TEST(ParseCidr, NullErrorPointerIsFine) {
  EXPECT_FALSE(ParseCidr("nope", nullptr));
  EXPECT_TRUE(ParseCidr("10.0.0.0/8", nullptr));
}

TEST(CidrContains, Ipv4Block) {
  Cidr c = MustParse("169.254.0.0/16");
  EXPECT_TRUE(c.Contains(Ip("169.254.0.0")));
  EXPECT_TRUE(c.Contains(Ip("169.254.169.254")));
  EXPECT_TRUE(c.Contains(Ip("169.254.255.255")));
  EXPECT_FALSE(c.Contains(Ip("169.255.0.0")));
  EXPECT_FALSE(c.Contains(Ip("169.253.255.255")));
  EXPECT_TRUE(c.Contains(Ip("::ffff:169.254.1.1")));  // v4-mapped is the same address
}

TEST(CidrContains, NonOctetPrefix) {
  Cidr c = MustParse("192.0.2.64/26");
  EXPECT_FALSE(c.Contains(Ip("192.0.2.63")));
  EXPECT_TRUE(c.Contains(Ip("192.0.2.64")));
  EXPECT_TRUE(c.Contains(Ip("192.0.2.127")));
  EXPECT_FALSE(c.Contains(Ip("192.0.2.128")));
}

TEST(CidrContains, SlashZeroHoldsItsFamilyOnly) {
  Cidr v4 = MustParse("0.0.0.0/0");
  EXPECT_TRUE(v4.Contains(Ip("0.0.0.0")));
  EXPECT_TRUE(v4.Contains(Ip("255.255.255.255")));
  EXPECT_FALSE(v4.Contains(Ip("::1")));
  EXPECT_FALSE(v4.Contains(Ip("::")));
  Cidr v6 = MustParse("::/0");
  EXPECT_TRUE(v6.Contains(Ip("::")));
  EXPECT_TRUE(v6.Contains(Ip("2001:db8::1")));
  EXPECT_TRUE(v6.Contains(Ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(v6.Contains(Ip("10.0.0.1")));
  EXPECT_FALSE(v6.Contains(Ip("::ffff:10.0.0.1")));
}

TEST(CidrContains, HostRoutes) {
  Cidr v4 = MustParse("10.0.0.1/32");
  EXPECT_TRUE(v4.Contains(Ip("10.0.0.1")));
  EXPECT_FALSE(v4.Contains(Ip("10.0.0.0")));
  EXPECT_FALSE(v4.Contains(Ip("10.0.0.2")));
  Cidr v6 = MustParse("2001:db8::1/128");
  EXPECT_TRUE(v6.Contains(Ip("2001:db8::1")));
  EXPECT_FALSE(v6.Contains(Ip("2001:db8::")));
  EXPECT_FALSE(v6.Contains(Ip("2001:db8::2")));
}

TEST(CidrContains, Ipv6Block) {
  Cidr c = MustParse("fd00::/8");
  EXPECT_TRUE(c.Contains(Ip("fd12:3456::1")));
  EXPECT_TRUE(c.Contains(Ip("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(c.Contains(Ip("fc00::1")));
  EXPECT_FALSE(c.Contains(Ip("fe00::")));
}

TEST(CidrContains, Ipv4BlockNeverHoldsIpv6WithSameLowBits) {
  // ::a00:1 ends in the bytes of 10.0.0.1 but is not v4-mapped.
  EXPECT_FALSE(MustParse("10.0.0.0/8").Contains(Ip("::10.0.0.1")));
  EXPECT_FALSE(MustParse("10.0.0.0/8").Contains(Ip("64:ff9b::10.0.0.1")));
}

TEST(CidrContains, V6PrefixCoveringMappedRangeStaysIpv6) {
  // ::/64 covers ::ffff:0:0/96 bit-wise, but families are kept apart.
  EXPECT_FALSE(MustParse("::/64").Contains(Ip("10.0.0.1")));
  EXPECT_TRUE(MustParse("::/64").Contains(Ip("::2")));
}

}  // namespace
}  // namespace egressd::policy
