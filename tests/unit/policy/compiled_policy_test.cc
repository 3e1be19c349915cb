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

// --- what names no host ----------------------------------------------------

const char* kDenyList = R"(name: open
denied_hosts: ["denied.test"]
allow_tcp: ["10.1.0.0/16:443", "db.internal:5432"]
)";

TEST(DecideTarget, NamesAreDecidedLikeDecideHost) {
  CompiledPolicy p = Compile(kDenyList);
  EXPECT_EQ(p.DecideTarget("allowed.test", 443).verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideTarget("denied.test", 443).verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideTarget("Denied.Test.", 443).verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideTarget("", 443).verdict, HostVerdict::kDenied);
}

TEST(DecideTarget, IpLiteralUnderADenyListIsRefused) {
  CompiledPolicy p = Compile(kDenyList);
  for (const char* literal : {"127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1"}) {
    HostDecision d = p.DecideTarget(literal, 80);
    EXPECT_EQ(d.verdict, HostVerdict::kDenied) << literal;
    EXPECT_NE(d.reason.find("names no host"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("IP literal"), std::string::npos) << d.reason;
  }
}

TEST(DecideTarget, AllowTcpCoversAnIpLiteralOnItsPort) {
  CompiledPolicy p = Compile(kDenyList);
  HostDecision d = p.DecideTarget("10.1.2.3", 443);
  EXPECT_EQ(d.verdict, HostVerdict::kAllowed);
  EXPECT_EQ(d.reason, "allow_tcp entry \"10.1.0.0/16:443\"");
  EXPECT_EQ(p.DecideTarget("10.1.2.3", 80).verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideTarget("10.2.0.1", 443).verdict, HostVerdict::kDenied);
}

TEST(DecideTarget, AllowUnnamedLetsIpLiteralsThrough) {
  CompiledPolicy p = Compile("name: open\ndenied_hosts: [\"denied.test\"]\nallow_unnamed: true\n");
  HostDecision d = p.DecideTarget("127.0.0.1", 80);
  EXPECT_EQ(d.verdict, HostVerdict::kAllowed);
  EXPECT_EQ(d.reason, "allow_unnamed");
  // denied_hosts may still list a literal, and wins.
  CompiledPolicy q =
      Compile("name: open\ndenied_hosts: [\"denied.test\", \"127.0.0.2\"]\nallow_unnamed: true\n");
  EXPECT_EQ(q.DecideTarget("127.0.0.2", 80).verdict, HostVerdict::kDenied);
}

TEST(DecideTarget, WithoutDenyListEverythingIsAllowed) {
  CompiledPolicy p = Compile("name: everything\n");
  EXPECT_EQ(p.DecideTarget("127.0.0.1", 80).verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideUnnamed(Ip("127.0.0.1"), 443, "TLS without SNI").verdict,
            HostVerdict::kAllowed);
}

TEST(DecideTarget, DenyByDefaultDecidesLiteralsByAllowedHosts) {
  CompiledPolicy p = Compile("name: strict\nallowed_hosts: [\"127.0.0.1\"]\n");
  EXPECT_EQ(p.DecideTarget("127.0.0.1", 80).verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideTarget("127.0.0.2", 80).verdict, HostVerdict::kDenied);
}

TEST(DecideUnnamed, TlsWithoutSni) {
  CompiledPolicy open = Compile(kDenyList);
  HostDecision d = open.DecideUnnamed(Ip("127.0.0.1"), 443, "TLS without SNI");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_EQ(d.reason.rfind("TLS without SNI names no host", 0), 0u) << d.reason;
  EXPECT_EQ(open.DecideUnnamed(Ip("10.1.0.9"), 443, "TLS without SNI").verdict,
            HostVerdict::kAllowed);
  CompiledPolicy strict = Compile(kAgent);
  HostDecision s = strict.DecideUnnamed(Ip("10.1.0.9"), 443, "TLS without SNI");
  EXPECT_EQ(s.verdict, HostVerdict::kDenied);
  EXPECT_EQ(s.reason, "TLS without SNI under a deny-by-default policy");
}

TEST(DecideUnnamed, InvalidEntryFailsClosed) {
  Policy bad;
  bad.name = "bad";
  bad.allow_get_body = {"a b"};
  bad.allow_unnamed = true;
  bad.denied_hosts = {"x.com"};
  CompiledPolicy p(bad);
  ASSERT_TRUE(p.invalid_entry());
  EXPECT_EQ(p.DecideUnnamed(Ip("127.0.0.1"), 80, "TLS without SNI").verdict, HostVerdict::kDenied);
  EXPECT_EQ(p.DecideRequestBody("GET", "a b").verdict, HostVerdict::kDenied);
}

// --- bodies on GET and HEAD --------------------------------------------------

TEST(DecideRequestBody, GetAndHeadNeedAllowGetBody) {
  CompiledPolicy p =
      Compile("name: a\nallow_get_body: [\"search.example.com\", \"*.es.internal\"]\n");
  for (const char* method : {"GET", "HEAD"}) {
    EXPECT_EQ(p.DecideRequestBody(method, "search.example.com").verdict, HostVerdict::kAllowed);
    EXPECT_EQ(p.DecideRequestBody(method, "Node1.ES.internal.").verdict, HostVerdict::kAllowed);
    HostDecision d = p.DecideRequestBody(method, "example.com");
    EXPECT_EQ(d.verdict, HostVerdict::kDenied);
    EXPECT_EQ(d.reason,
              std::string(method) + " request with a body (allow_get_body does not list the host)");
  }
  EXPECT_EQ(p.DecideRequestBody("GET", "search.example.com").matched_entry, "search.example.com");
  EXPECT_EQ(Compile("name: a\n").DecideRequestBody("GET", "x.com").verdict, HostVerdict::kDenied);
}

TEST(DecideRequestBody, OtherMethodsCarryBodies) {
  CompiledPolicy p = Compile("name: a\n");
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
    EXPECT_EQ(p.DecideRequestBody(method, "x.com").verdict, HostVerdict::kAllowed) << method;
}

}  // namespace
}  // namespace egressd::policy
