#include "policy/compiled_policy.h"

#include <gtest/gtest.h>

#include "handler_builders.h"
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

// --- handlers ------------------------------------------------------------------

using namespace test_handlers;

HandlerBinding Bind(std::string handler, Params params = {}) {
  return HandlerBinding{std::move(handler), std::move(params)};
}

// A policy with one handler per name, each a set_header "X-Handler: NAME"
// (request-level), plus host-level ones.
Policy HandlerPolicy() {
  Policy p;
  p.name = "hp";
  for (const char* name : {"pol-exact", "pol-glob", "pol-long-glob", "pol-catch", "inst-exact",
                           "inst-glob", "inst-catch"})
    p.handlers[name] = MakeHandler(name, {ValueStep(StepKind::kSetHeader, "X-Handler", name)});
  p.handlers["no-http"] = MakeHandler("no-http", {DenyStep("network locked after setup")});
  p.handlers["allow-hosts"] =
      MakeHandler("allow-hosts", {ListStep(StepKind::kAllowHosts, {"{{params.hostnames}}"})});
  p.handlers["github-auth"] = MakeHandler(
      "github-auth",
      {ValueStep(StepKind::kSetHeader, "Authorization", "Bearer {{secret:github_token}}")});
  p.handlers["methods"] =
      MakeHandler("methods", {ListStep(StepKind::kDenyHosts, {"*.evil.com"}, 451),
                              ListStep(StepKind::kAllowMethods, {"GET"}, 405)});
  return p;
}

std::string HandlerNameFor(const CompiledPolicy& p, std::string_view host) {
  auto bound = p.HandlerFor(host);
  return bound ? bound->handler_name + " <- " + bound->origin : "none";
}

TEST(HandlerFor, BindingOrder) {
  Policy policy = HandlerPolicy();
  policy.by_host = {{"api.github.com", Bind("pol-exact")},
                    {"*.github.com", Bind("pol-glob")},
                    {"*.api.github.com", Bind("pol-long-glob")}};
  policy.catch_all = Bind("pol-catch");
  CompiledPolicy bare(policy);
  EXPECT_EQ(HandlerNameFor(bare, "API.github.com."),
            "pol-exact <- policy by_host \"api.github.com\"");
  EXPECT_EQ(HandlerNameFor(bare, "x.github.com"), "pol-glob <- policy by_host \"*.github.com\"");
  EXPECT_EQ(HandlerNameFor(bare, "v3.api.github.com"),
            "pol-long-glob <- policy by_host \"*.api.github.com\"");
  EXPECT_EQ(HandlerNameFor(bare, "example.com"), "pol-catch <- policy catch_all");
  EXPECT_TRUE(bare.HandlerFor("x.github.com")->by_host);
  EXPECT_FALSE(bare.HandlerFor("example.com")->by_host);

  InstanceRules rules;
  rules.by_host = {{"*.github.com", Bind("inst-glob")}, {"gist.github.com", Bind("inst-exact")}};
  rules.catch_all = Bind("inst-catch");
  CompiledPolicy inst(policy, rules, "job-42");
  // The instance's by_host (even a glob) beats the policy's exact entry.
  EXPECT_EQ(HandlerNameFor(inst, "api.github.com"),
            "inst-glob <- instance by_host \"*.github.com\"");
  EXPECT_EQ(HandlerNameFor(inst, "gist.github.com"),
            "inst-exact <- instance by_host \"gist.github.com\"");
  EXPECT_EQ(HandlerNameFor(inst, "github.com"), "inst-catch <- instance catch_all");
  // Without an instance catch_all the policy's by_host comes before the policy's catch_all.
  rules.catch_all.reset();
  rules.by_host = {{"gist.github.com", Bind("inst-exact")}};
  CompiledPolicy no_catch(policy, rules, "job-42");
  EXPECT_EQ(HandlerNameFor(no_catch, "api.github.com"),
            "pol-exact <- policy by_host \"api.github.com\"");
  EXPECT_EQ(HandlerNameFor(no_catch, "example.com"), "pol-catch <- policy catch_all");
  rules.catch_all = Bind("inst-catch");
  CompiledPolicy inst_catch(policy, rules, "job-42");
  EXPECT_EQ(HandlerNameFor(inst_catch, "x.github.com"),
            "pol-glob <- policy by_host \"*.github.com\"");
  EXPECT_EQ(HandlerNameFor(inst_catch, "example.com"), "inst-catch <- instance catch_all");
  EXPECT_EQ(HandlerNameFor(CompiledPolicy(HandlerPolicy()), "example.com"), "none");
}

TEST(HandlerFor, UnknownHandlerFailsClosed) {
  InstanceRules rules;
  rules.by_host = {{"a.com", Bind("gone")}};
  rules.catch_all = Bind("allow-hosts");  // no hostnames param
  CompiledPolicy p(HandlerPolicy(), rules, "job-42");
  auto bound = p.HandlerFor("a.com");
  ASSERT_TRUE(bound);
  EXPECT_EQ(bound->handler, nullptr);
  EXPECT_EQ(bound->problem,
            "instance by_host \"a.com\": handler \"gone\" is not defined in policy \"hp\"");
  HostDecision d = p.DecideHost("a.com");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_EQ(d.reason, bound->problem);
  EXPECT_EQ(d.handler, "gone");
  HandlerResult r = p.RunHandler({"a.com", "GET", "/"}, nullptr);
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(p.DecideHost("b.com").verdict, HostVerdict::kDenied);
  EXPECT_NE(p.DecideHost("b.com").reason.find("{{params.hostnames}}"), std::string::npos);
}

TEST(DecideHost, HandlerHostLevelSteps) {
  Policy policy = HandlerPolicy();
  policy.by_host = {{"*.example.com", Bind("methods")}};
  policy.catch_all =
      Bind("allow-hosts",
           {{"hostnames", std::vector<std::string>{"github.com", "*.npmjs.org", "*.example.com"}}});
  CompiledPolicy p(policy, {}, "job-42");
  EXPECT_EQ(p.DecideHost("github.com").verdict, HostVerdict::kAllowed);
  EXPECT_EQ(p.DecideHost("registry.npmjs.org").verdict, HostVerdict::kAllowed);
  HostDecision d = p.DecideHost("pypi.org");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_EQ(d.status, 403);
  EXPECT_EQ(d.handler, "allow-hosts");
  EXPECT_EQ(d.reason,
            "handler \"allow-hosts\" step 1 (allow_hosts): host \"pypi.org\" is not allowed");
  // by_host binds a.evil.example.com? No: *.example.com binds "methods", whose deny_hosts decides.
  EXPECT_EQ(p.DecideHost("x.example.com").verdict, HostVerdict::kAllowed);
  HostDecision evil = p.DecideHost("www.evil.com");
  EXPECT_EQ(evil.verdict, HostVerdict::kDenied);  // catch_all: not in hostnames
  policy.by_host.push_back({"*.evil.com", Bind("methods")});
  HostDecision by_step = CompiledPolicy(policy).DecideHost("www.evil.com");
  EXPECT_EQ(by_step.status, 451);
  EXPECT_EQ(by_step.handler, "methods");
}

TEST(DecideHost, DeniedAndAllowedComeBeforeHandlers) {
  Policy policy = HandlerPolicy();
  policy.allowed_hosts = {"github.com", "*.github.com"};
  policy.denied_hosts = {"gist.github.com"};
  policy.catch_all = Bind("no-http");
  policy.by_host = {{"api.github.com", Bind("pol-exact")}};
  CompiledPolicy p(policy);
  EXPECT_EQ(p.DecideHost("gist.github.com").reason, "denied_hosts entry \"gist.github.com\"");
  EXPECT_EQ(p.DecideHost("pypi.org").reason, "not in allowed_hosts (deny by default)");
  HostDecision locked = p.DecideHost("github.com");
  EXPECT_EQ(locked.verdict, HostVerdict::kDenied);
  EXPECT_EQ(locked.reason, "handler \"no-http\" step 1 (deny): network locked after setup");
  EXPECT_EQ(locked.handler, "no-http");
  HostDecision api = p.DecideHost("api.github.com");
  EXPECT_EQ(api.verdict, HostVerdict::kAllowed);
  EXPECT_EQ(api.reason, "allowed_hosts entry \"*.github.com\"");
  EXPECT_EQ(api.handler, "");
}

TEST(InstanceRules, HostListsJoinThePolicys) {
  Policy policy;
  policy.name = "p";
  policy.denied_hosts = {"evil.com"};
  InstanceRules rules;
  rules.denied_hosts = {"*.pypi.org"};
  CompiledPolicy open(policy, rules, "i");
  EXPECT_FALSE(open.deny_by_default());
  EXPECT_EQ(open.DecideHost("evil.com").verdict, HostVerdict::kDenied);
  EXPECT_EQ(open.DecideHost("files.pypi.org").verdict, HostVerdict::kDenied);
  EXPECT_EQ(open.DecideHost("github.com").verdict, HostVerdict::kAllowed);
  rules.allowed_hosts = {"github.com", "files.pypi.org"};
  CompiledPolicy closed(policy, rules, "i");
  EXPECT_TRUE(closed.deny_by_default());
  EXPECT_EQ(closed.DecideHost("github.com").verdict, HostVerdict::kAllowed);
  EXPECT_EQ(closed.DecideHost("files.pypi.org").verdict, HostVerdict::kDenied);  // denied wins
  EXPECT_EQ(closed.DecideHost("npmjs.org").verdict, HostVerdict::kDenied);
  EXPECT_EQ(closed.DecideUnnamed(Ip("10.0.0.1"), 443, "TLS without SNI").verdict,
            HostVerdict::kDenied);
  InstanceRules bad;
  bad.allowed_hosts = {"a..b"};
  CompiledPolicy invalid(policy, bad, "i");
  ASSERT_TRUE(invalid.invalid_entry());
  EXPECT_EQ(invalid.DecideHost("github.com").verdict, HostVerdict::kDenied);
}

TEST(DecideUnnamed, InstanceDeniedHostsCount) {
  Policy policy;
  policy.name = "p";
  EXPECT_EQ(CompiledPolicy(policy).DecideUnnamed(Ip("10.0.0.1"), 443, "TLS without SNI").verdict,
            HostVerdict::kAllowed);
  InstanceRules rules;
  rules.denied_hosts = {"evil.com"};
  HostDecision d =
      CompiledPolicy(policy, rules, "i").DecideUnnamed(Ip("10.0.0.1"), 443, "TLS without SNI");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_NE(d.reason.find("names no host"), std::string::npos);
}

TEST(DecideUnnamed, CatchAllHostStepsLockAddressesToo) {
  Policy policy = HandlerPolicy();
  InstanceRules rules;
  rules.catch_all = Bind("no-http");
  CompiledPolicy locked(policy, rules, "job-42");
  HostDecision d = locked.DecideUnnamed(Ip("10.0.0.1"), 443, "TLS without SNI");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_EQ(d.handler, "no-http");
  EXPECT_EQ(d.reason,
            "TLS without SNI: handler \"no-http\" step 1 (deny): network locked after setup");
  EXPECT_EQ(locked.DecideTarget("10.0.0.1", 80).verdict, HostVerdict::kDenied);
  rules.catch_all = Bind("allow-hosts", {{"hostnames", std::vector<std::string>{"github.com"}}});
  CompiledPolicy named(policy, rules, "job-42");
  EXPECT_EQ(named.DecideUnnamed(Ip("10.0.0.1"), 443, "TLS without SNI").verdict,
            HostVerdict::kDenied);
  EXPECT_EQ(named.DecideTarget("10.0.0.1", 443).verdict, HostVerdict::kDenied);
  EXPECT_EQ(named.DecideTarget("github.com", 443).verdict, HostVerdict::kAllowed);
  // A deny step bound by host: that host's address must not get through unnamed.
  policy.by_host = {{"*.evil.com", Bind("no-http")}};
  CompiledPolicy by_host(policy);
  EXPECT_EQ(by_host.DecideUnnamed(Ip("10.0.0.1"), 443, "TLS without SNI").verdict,
            HostVerdict::kDenied);
  policy.allow_unnamed = true;
  EXPECT_EQ(CompiledPolicy(policy).DecideUnnamed(Ip("10.0.0.1"), 443, "TLS without SNI").verdict,
            HostVerdict::kAllowed);
}

TEST(DecideUnnamed, HandlerBoundToTheAddressDecides) {
  Policy policy = HandlerPolicy();
  policy.by_host = {{"10.0.0.1", Bind("no-http")}};
  CompiledPolicy p(policy);
  HostDecision d = p.DecideUnnamed(Ip("10.0.0.1"), 443, "TLS without SNI");
  EXPECT_EQ(d.verdict, HostVerdict::kDenied);
  EXPECT_EQ(d.handler, "no-http");
  // Another address meets no handler, but a deny step bound by host makes
  // what names no host suspect, as denied_hosts does.
  EXPECT_EQ(p.DecideUnnamed(Ip("10.0.0.2"), 443, "TLS without SNI").verdict, HostVerdict::kDenied);
  policy.allow_tcp = {*ParseTcpRule("10.0.0.0/24:443", nullptr)};
  EXPECT_EQ(CompiledPolicy(policy).DecideUnnamed(Ip("10.0.0.2"), 443, "TLS without SNI").verdict,
            HostVerdict::kAllowed);
}

TEST(Intercepts, RequestLevelHandlersIntercept) {
  Policy policy = HandlerPolicy();
  policy.by_host = {{"api.github.com", Bind("github-auth")}, {"*.evil.com", Bind("no-http")}};
  policy.tls_passthrough = {"pinned.github.com"};
  CompiledPolicy p(policy);
  EXPECT_TRUE(p.can_intercept());
  EXPECT_TRUE(p.Intercepts("api.github.com"));
  EXPECT_FALSE(p.Intercepts("x.evil.com"));  // host-level only: decided by SNI
  EXPECT_FALSE(p.Intercepts("example.com"));
  EXPECT_EQ(p.InterceptRefusal("api.github.com"), "");

  Policy host_level = HandlerPolicy();
  host_level.catch_all = Bind("no-http");
  // A request-level handler defined may be bound at runtime: the CA is needed.
  EXPECT_TRUE(CompiledPolicy(host_level).can_intercept());
  Policy only_host_level;
  only_host_level.name = "h";
  only_host_level.handlers["no-http"] = host_level.handlers.at("no-http");
  only_host_level.catch_all = Bind("no-http");
  EXPECT_FALSE(CompiledPolicy(only_host_level).can_intercept());
  InstanceRules rules;
  rules.by_host = {{"pinned.github.com", Bind("github-auth")}};
  CompiledPolicy inst(policy, rules, "i");
  EXPECT_FALSE(inst.Intercepts("pinned.github.com"));  // passthrough wins
  EXPECT_EQ(inst.InterceptRefusal("pinned.github.com"),
            "handler \"github-auth\" (instance by_host \"pinned.github.com\") needs to see "
            "requests to pinned.github.com, but tls.passthrough entry \"pinned.github.com\" "
            "keeps its TLS opaque");
  EXPECT_TRUE(CompiledPolicy(host_level, rules, "i").can_intercept());
  rules.by_host.clear();
  rules.catch_all = Bind("methods");
  EXPECT_TRUE(CompiledPolicy(host_level, rules, "i").can_intercept());
  EXPECT_TRUE(CompiledPolicy(host_level, rules, "i").Intercepts("example.com"));
}

TEST(RunHandler, CredentialOnlyToHostsABindingNames) {
  const MapSecrets secrets(std::map<std::string, std::string>{{"github_token", "ghp_SECRET"}});
  Policy policy = HandlerPolicy();
  policy.by_host = {{"api.github.com", Bind("github-auth")}};
  CompiledPolicy p(policy, {}, "job-42");
  HandlerResult ok = p.RunHandler({"api.github.com", "GET", "/"}, &secrets);
  ASSERT_FALSE(ok.refused) << ok.reason;
  ASSERT_EQ(ok.edits.size(), 1u);
  EXPECT_EQ(ok.edits[0].value, "Bearer ghp_SECRET");
  EXPECT_TRUE(ok.credential);
  HandlerResult none = p.RunHandler({"example.com", "GET", "/"}, &secrets);
  EXPECT_FALSE(none.refused);
  EXPECT_TRUE(none.edits.empty());

  InstanceRules rules;
  rules.catch_all = Bind("github-auth");
  CompiledPolicy leak(policy, rules, "job-42");
  EXPECT_FALSE(leak.RunHandler({"api.github.com", "GET", "/"}, &secrets).refused);
  HandlerResult r = leak.RunHandler({"example.com", "GET", "/"}, &secrets);
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(r.edits.empty());
  EXPECT_EQ(r.reason.find("ghp_SECRET"), std::string::npos);
  EXPECT_NE(r.reason.find("bind it by host in by_host"), std::string::npos);
}

TEST(RunHandler, RunsOnlyRequestLevelSteps) {
  Policy policy = HandlerPolicy();
  policy.catch_all = Bind("methods");
  CompiledPolicy p(policy);
  // deny_hosts is host-level: DecideHost's business, not RunHandler's.
  EXPECT_FALSE(p.RunHandler({"www.evil.com", "GET", "/"}, nullptr).refused);
  EXPECT_EQ(p.DecideHost("www.evil.com").status, 451);
  HandlerResult r = p.RunHandler({"example.com", "POST", "/"}, nullptr);
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 405);
}

TEST(RunHandler, InstanceNameExpands) {
  Policy policy = HandlerPolicy();
  policy.handlers["who"] =
      MakeHandler("who", {ValueStep(StepKind::kSetHeader, "X-Who", "{{instance}}")});
  policy.by_host = {{"a.com", Bind("who")}};
  HandlerResult r = CompiledPolicy(policy, {}, "job-42").RunHandler({"a.com", "GET", "/"}, nullptr);
  ASSERT_EQ(r.edits.size(), 1u);
  EXPECT_EQ(r.edits[0].value, "job-42");
}

}  // namespace
}  // namespace egressd::policy
