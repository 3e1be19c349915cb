#include "policy/bpf_lowering.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "policy/policy_loader.h"

namespace egressd::policy {
namespace {

Policy Load(const char* yaml) {
  auto r = ParsePolicy(yaml);
  EXPECT_TRUE(r.ok()) << FormatErrors(r.errors, "test");
  return *r.policy;
}

TEST(LowerDenyCidrs, Ipv4IsV4MappedWithSetIdPrefix) {
  auto entries = LowerDenyCidrs(Load("name: t\ndeny_cidrs: [\"10.0.0.0/8\"]\n"), 7);
  ASSERT_EQ(entries.size(), 1u);
  const auto& [key, value] = entries[0];
  EXPECT_EQ(key.prefixlen, 32u + 96u + 8u);
  EXPECT_EQ(key.policy_set_id, 7u << 1);  // IPv4 rules: family bit 0
  EXPECT_EQ(key.addr[0], 0u);
  EXPECT_EQ(key.addr[1], 0u);
  EXPECT_EQ(key.addr[2], htonl(0xffff));
  EXPECT_EQ(key.addr[3], htonl(0x0a000000));
  EXPECT_EQ(value.rule_index, 0u);
}

TEST(LowerDenyCidrs, Ipv6AndRuleIndexes) {
  auto entries =
      LowerDenyCidrs(Load("name: t\ndeny_cidrs: [\"169.254.0.0/16\", \"fd00::/8\", \"::1\"]\n"), 1);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[1].first.prefixlen, 32u + 8u);
  EXPECT_EQ(entries[1].first.policy_set_id, (1u << 1) | 1u);  // IPv6 rules: family bit 1
  EXPECT_EQ(entries[1].first.addr[0], htonl(0xfd000000));
  EXPECT_EQ(entries[1].second.rule_index, 1u);
  EXPECT_EQ(entries[2].first.prefixlen, 32u + 128u);
  EXPECT_EQ(entries[2].first.addr[3], htonl(1));
}

TEST(LowerDenyCidrs, KeyHasNoPaddingToLeakStaleBytes) {
  // Every byte of the key is a named field: the LPM trie compares raw bytes.
  egressd_cidr_key key{};
  EXPECT_EQ(sizeof(key), sizeof(key.prefixlen) + sizeof(key.policy_set_id) + sizeof(key.addr));
}

}  // namespace
}  // namespace egressd::policy
