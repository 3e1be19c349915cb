#include "policy/compiled_policy.h"

#include <gtest/gtest.h>

#include "policy/policy_loader.h"

namespace egressd::policy {
namespace {

CompiledPolicy Compile(const std::string& yaml) {
  LoadResult r = ParsePolicy(yaml);
  EXPECT_TRUE(r.ok()) << FormatErrors(r.errors, "test.yaml");
  return CompiledPolicy(r.policy.value_or(Policy{}));
}

IpAddress Ip(const char* text) {
  return *IpAddress::Parse(text);
}

const char* kAgent = R"(name: agent
allowed_hosts: ["github.com", "*.github.com", "registry.npmjs.org"]
denied_hosts: ["gist.github.com", "*.evil.github.com"]
)";

TEST(CompiledPolicy, Accessors) {
  CompiledPolicy p = Compile(kAgent);
  EXPECT_EQ(p.name(), "agent");
  EXPECT_TRUE(p.deny_by_default());
  EXPECT_EQ(p.policy().allowed_hosts.size(), 3u);
  EXPECT_FALSE(p.invalid_entry());
  EXPECT_FALSE(Compile("name: open\n").deny_by_default());
}

TEST(DecideHost, AllowedExact) {
  HostDecision d = Compile(kAgent).DecideHost("github.com");
  EXPECT_EQ(d.verdict, HostVerdict::kAllowed);
  EXPECT_EQ(d.reason, "allowed_hosts entry \"github.com\"");
  EXPECT_EQ(d.matched_entry, "github.com");
}

TEST(DecideHost, AllowedByPattern) {
  HostDecision d = Compile(kAgent).DecideHost("API.GitHub.com.");
  EXPECT_EQ(d.verdict, HostVerdict::kAllowed);
  EXPECT_EQ(d.reason, "allowed_hosts entry \"*.github.com\"");
  EXPECT_EQ(d.matched_entry, "*.github.com");
}

TEST(DecideHost, DeniedHostsWinOverAllowedPattern) {
  CompiledPolicy p = Compile(kAgent);
  HostDecision d = p.DecideHost("gist.github.com");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_EQ(d.reason, "denied_hosts entry \"gist.github.com\"");
  EXPECT_EQ(d.matched_entry, "gist.github.com");
  HostDecision e = p.DecideHost("x.evil.github.com");
  EXPECT_EQ(e.verdict, HostVerdict::kDenied);
  EXPECT_EQ(e.matched_entry, "*.evil.github.com");
}

TEST(DecideHost, DeniedPatternWinsOverAllowedExact) {
  CompiledPolicy p =
      Compile("name: a\nallowed_hosts: [\"api.x.com\"]\ndenied_hosts: [\"*.x.com\"]\n");
  HostDecision d = p.DecideHost("api.x.com");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_EQ(d.reason, "denied_hosts entry \"*.x.com\"");
}

TEST(DecideHost, NotListedIsDeniedByDefault) {
  CompiledPolicy p = Compile(kAgent);
  for (const char* host : {"example.com", "npmjs.org", "github.com.evil.com", "evilgithub.com"}) {
    HostDecision d = p.DecideHost(host);
    EXPECT_EQ(d.verdict, HostVerdict::kDenied) << host;
    EXPECT_EQ(d.reason, "not in allowed_hosts (deny by default)") << host;
    EXPECT_FALSE(d.matched_entry) << host;
  }
}

TEST(DecideHost, NoAllowedHostsAllowsByDefault) {
  CompiledPolicy p = Compile("name: a\ndenied_hosts: [\"*.tracker.com\"]\n");
  HostDecision d = p.DecideHost("example.com");
  EXPECT_EQ(d.verdict, HostVerdict::kAllowed);
  EXPECT_EQ(d.reason, "no allowed_hosts: allow by default");
  EXPECT_FALSE(d.matched_entry);
  EXPECT_EQ(p.DecideHost("ads.tracker.com").verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideHost("tracker.com").verdict, HostVerdict::kAllowed);
}

TEST(DecideHost, DenyStarDeniesEverything) {
  CompiledPolicy p = Compile("name: a\nallowed_hosts: [\"github.com\"]\ndenied_hosts: [\"*\"]\n");
  EXPECT_EQ(p.DecideHost("github.com").verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideHost("github.com").matched_entry, "*");
}

TEST(DecideHost, InvalidHostIsDenied) {
  CompiledPolicy open = Compile("name: open\n");  // even under allow-by-default
  for (const char* host : {"", "bad host", "a..b", "*.github.com", "evil.com/x", "x\xff.com"}) {
    HostDecision d = open.DecideHost(host);
    EXPECT_EQ(d.verdict, HostVerdict::kDenied) << host;
    EXPECT_EQ(d.reason, "not a valid host name") << host;
  }
}

TEST(DecideHost, StarInHostDoesNotSlipPastDeniedHosts) {
  // "gis*.github.com" would match "*.github.com" and not be the denied exact entry.
  CompiledPolicy p = Compile(kAgent);
  EXPECT_EQ(p.DecideHost("gis*.github.com").verdict, HostVerdict::kDenied);
}

TEST(DecideHost, Ipv6LiteralHost) {
  CompiledPolicy p = Compile("name: a\nallowed_hosts: [\"[::1]\"]\n");
  EXPECT_EQ(p.DecideHost("::1").verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideHost("[0::1]").verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideHost("::2").verdict, HostVerdict::kDenied);
}

TEST(DecideHost, HandBuiltPolicyWithBadEntryFailsClosed) {
  Policy bad;
  bad.name = "bad";
  bad.allowed_hosts = {"bad host"};  // the loader would have refused this
  CompiledPolicy p(bad);
  ASSERT_TRUE(p.invalid_entry());
  EXPECT_TRUE(p.deny_by_default());
  HostDecision d = p.DecideHost("example.com");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_NE(d.reason.find("invalid entry"), std::string::npos) << d.reason;

  Policy bad_deny;
  bad_deny.denied_hosts = {"**"};
  EXPECT_EQ(CompiledPolicy(bad_deny).DecideHost("example.com").verdict, HostVerdict::kDenied);
}

TEST(DecideHost, DecisionIsIndependentOfEntryOrder) {
  CompiledPolicy a = Compile("name: a\nallowed_hosts: [\"*\", \"*.x.com\", \"api.x.com\"]\n");
  CompiledPolicy b = Compile("name: a\nallowed_hosts: [\"api.x.com\", \"*.x.com\", \"*\"]\n");
  for (const auto* p : {&a, &b}) {
    EXPECT_EQ(p->DecideHost("api.x.com").matched_entry, "api.x.com");
    EXPECT_EQ(p->DecideHost("www.x.com").matched_entry, "*.x.com");
    EXPECT_EQ(p->DecideHost("y.com").matched_entry, "*");
  }
}

const char* kTcp = R"(name: tcp
allow_tcp:
  - db.internal:5432
  - cache.internal:6379
  - replica.internal:5432
  - 192.0.2.0/24:22
  - 198.51.100.7:5432
  - "[::1]:5432"
  - "[fd00::/8]:443"
)";

TEST(AllowTcpByAddress, Ipv4CidrAndPort) {
  CompiledPolicy p = Compile(kTcp);
  EXPECT_TRUE(p.AllowTcpByAddress(Ip("192.0.2.1"), 22));
  EXPECT_TRUE(p.AllowTcpByAddress(Ip("192.0.2.255"), 22));
  EXPECT_TRUE(p.AllowTcpByAddress(Ip("::ffff:192.0.2.9"), 22));
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("192.0.3.1"), 22));
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("192.0.2.1"), 23));
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("192.0.2.1"), 5432));
}

TEST(AllowTcpByAddress, SingleAddresses) {
  CompiledPolicy p = Compile(kTcp);
  EXPECT_TRUE(p.AllowTcpByAddress(Ip("198.51.100.7"), 5432));
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("198.51.100.8"), 5432));
  EXPECT_TRUE(p.AllowTcpByAddress(Ip("::1"), 5432));
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("::2"), 5432));
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("::1"), 22));
}

TEST(AllowTcpByAddress, Ipv6Cidr) {
  CompiledPolicy p = Compile(kTcp);
  EXPECT_TRUE(p.AllowTcpByAddress(Ip("fd12::1"), 443));
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("fe80::1"), 443));
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("10.0.0.1"), 443));
}

TEST(AllowTcpByAddress, HostRulesDoNotMatchAddresses) {
  CompiledPolicy p = Compile("name: a\nallow_tcp: [\"db.internal:5432\"]\n");
  EXPECT_FALSE(p.AllowTcpByAddress(Ip("10.0.0.1"), 5432));
  EXPECT_FALSE(Compile("name: a\n").AllowTcpByAddress(Ip("10.0.0.1"), 5432));
}

TEST(AllowTcpHostsForPort, ListsHostRulesForThePort) {
  CompiledPolicy p = Compile(kTcp);
  EXPECT_EQ(p.AllowTcpHostsForPort(5432),
            (std::vector<std::string>{"db.internal", "replica.internal"}));
  EXPECT_EQ(p.AllowTcpHostsForPort(6379), std::vector<std::string>{"cache.internal"});
  EXPECT_TRUE(p.AllowTcpHostsForPort(22).empty());  // only a CIDR rule there
  EXPECT_TRUE(p.AllowTcpHostsForPort(443).empty());
  EXPECT_TRUE(p.AllowTcpHostsForPort(1).empty());
}

TEST(AllowTcpHostsForPort, NormalizedNames) {
  CompiledPolicy p = Compile("name: a\nallow_tcp: [\"DB.Internal.:5432\"]\n");
  EXPECT_EQ(p.AllowTcpHostsForPort(5432), std::vector<std::string>{"db.internal"});
}

}  // namespace
}  // namespace egressd::policy
