#include "policy/suggest.h"

#include <gtest/gtest.h>

#include "policy/compiled_policy.h"
#include "policy/policy_loader.h"

namespace egressd::policy {
namespace {

// The suggestion must load as a policy file does; returns it compiled.
CompiledPolicy Load(const std::string& yaml) {
  LoadResult r = ParsePolicy(yaml);
  EXPECT_TRUE(r.ok()) << FormatErrors(r.errors, "suggested.yaml") << "\n" << yaml;
  return CompiledPolicy(r.policy.value_or(Policy{}));
}

Policy Base() {
  LoadResult r = ParsePolicy(
      "name: learn\nmode: audit\nallowed_hosts: [unused.test]\n"
      "deny_cidrs: [169.254.0.0/16, \"fd00::/8\"]\n");
  EXPECT_TRUE(r.ok());
  return *r.policy;
}

TEST(SuggestPolicy, AllowsWhatWasSeenAndNothingMore) {
  ObservedTraffic seen;
  seen.hosts = {"a.test", "b.test", "127.0.0.1"};
  seen.tcp = {"10.0.0.5:22", "[::1]:5432"};
  std::string yaml = SuggestPolicy(Base(), seen, "agent-1");
  CompiledPolicy p = Load(yaml);
  EXPECT_EQ(p.name(), "learn-learned");
  EXPECT_EQ(p.policy().mode, PolicyMode::kEnforce) << "a suggestion is meant to be enforced";
  EXPECT_EQ(p.DecideHost("a.test").verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideHost("b.test").verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideHost("127.0.0.1").verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideHost("c.test").verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideHost("unused.test").verdict, HostVerdict::kDenied)
      << "the base policy's unused entries are not carried over";
  EXPECT_TRUE(p.AllowTcpByAddress(*IpAddress::Parse("10.0.0.5"), 22));
  EXPECT_TRUE(p.AllowTcpByAddress(*IpAddress::Parse("::1"), 5432));
  EXPECT_FALSE(p.AllowTcpByAddress(*IpAddress::Parse("10.0.0.5"), 23));
  EXPECT_EQ(p.policy().deny_cidrs.size(), 2u) << "deny_cidrs are kept";
  EXPECT_NE(yaml.find("instance \"agent-1\""), std::string::npos);
}

TEST(SuggestPolicy, NothingSeenDeniesEveryHost) {
  CompiledPolicy p = Load(SuggestPolicy(Base(), {}, "idle"));
  EXPECT_EQ(p.DecideHost("a.test").verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideHost("127.0.0.1").verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideUnnamed(*IpAddress::Parse("127.0.0.1"), 443, "TLS without SNI").verdict,
            HostVerdict::kDenied);
}

TEST(SuggestPolicy, AllowGetBodyIsKept) {
  Policy base = Base();
  base.allow_get_body = {"search.test"};
  ObservedTraffic seen;
  seen.hosts = {"search.test"};
  CompiledPolicy p = Load(SuggestPolicy(base, seen, "x"));
  EXPECT_EQ(p.DecideRequestBody("GET", "search.test").verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideRequestBody("GET", "other.test").verdict, HostVerdict::kDenied);
}

TEST(SuggestPolicy, UnexpressibleAndDroppedAreComments) {
  ObservedTraffic seen;
  seen.hosts = {"a.test"};
  seen.other = {"UDP to 10.0.0.1:123"};
  seen.dropped = 7;
  std::string yaml = SuggestPolicy(Base(), seen, "x");
  EXPECT_NE(yaml.find("# Seen, and no policy can allow it: UDP to 10.0.0.1:123"),
            std::string::npos);
  EXPECT_NE(yaml.find("# Warning: 7 observations"), std::string::npos);
  Load(yaml);
}

TEST(SuggestPolicy, LongBaseNameStaysWithinTheLimit) {
  Policy base = Base();
  base.name = std::string(64, 'n');
  CompiledPolicy p = Load(SuggestPolicy(base, {}, "x"));
  EXPECT_EQ(p.name().size(), 64u);
}

}  // namespace
}  // namespace egressd::policy
