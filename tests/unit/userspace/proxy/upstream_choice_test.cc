#include "userspace/proxy/upstream_choice.h"

#include <gtest/gtest.h>

#include "policy/policy_loader.h"

namespace egressd::proxy {
namespace {

policy::IpAddress Ip(const char* text) {
  return *policy::IpAddress::Parse(text);
}

policy::CompiledPolicy Compile(const char* yaml) {
  auto result = policy::ParsePolicy(yaml);
  EXPECT_TRUE(result.ok());
  return policy::CompiledPolicy(*result.policy);
}

// The directory of sandboxes, as far as own listener ports go.
class FakeDirectory : public sandbox::SandboxDirectory {
 public:
  std::shared_ptr<const sandbox::SandboxView> Find(uint32_t) const override { return nullptr; }
  bool IsListenerPort(uint16_t port) const override { return port == 15053; }
};
const FakeDirectory kDirectory;
const OwnListeners kOwn{15001, &kDirectory};

TEST(UpstreamChoice, OriginalDestinationWinsWhenAmongAnswers) {
  auto p = Compile("name: t\n");
  auto c = ChooseUpstream({Ip("10.1.1.1"), Ip("10.1.1.2")}, Ip("10.1.1.2"), 443, p, kOwn);
  ASSERT_TRUE(c.addr);
  EXPECT_EQ(*c.addr, Ip("10.1.1.2"));
}

TEST(UpstreamChoice, SandboxChosenAddressIsIgnored) {
  auto p = Compile("name: t\n");
  auto c = ChooseUpstream({Ip("10.1.1.1")}, Ip("192.0.2.66"), 443, p, kOwn);
  ASSERT_TRUE(c.addr);
  EXPECT_EQ(*c.addr, Ip("10.1.1.1"));
}

TEST(UpstreamChoice, PrefersTheFamilyTheSandboxUsed) {
  auto p = Compile("name: t\n");
  auto c = ChooseUpstream({Ip("2001:db8::1"), Ip("10.1.1.1")}, Ip("192.0.2.66"), 80, p, kOwn);
  ASSERT_TRUE(c.addr);
  EXPECT_EQ(*c.addr, Ip("10.1.1.1"));
  c = ChooseUpstream({Ip("10.1.1.1"), Ip("2001:db8::1")}, Ip("2001:db8::99"), 80, p, kOwn);
  EXPECT_EQ(*c.addr, Ip("2001:db8::1"));
}

TEST(UpstreamChoice, DeniedCidrAnswersAreSkippedOrRefused) {
  auto p = Compile("name: t\ndeny_cidrs: [\"169.254.0.0/16\"]\n");
  auto c = ChooseUpstream({Ip("169.254.169.254"), Ip("10.1.1.1")}, Ip("10.9.9.9"), 80, p, kOwn);
  ASSERT_TRUE(c.addr);
  EXPECT_EQ(*c.addr, Ip("10.1.1.1"));
  c = ChooseUpstream({Ip("169.254.169.254")}, Ip("169.254.169.254"), 80, p, kOwn);
  EXPECT_FALSE(c.addr);
  EXPECT_NE(c.error.find("deny_cidrs"), std::string::npos);
}

TEST(UpstreamChoice, RefusesEgressdItself) {
  auto p = Compile("name: t\n");
  auto c = ChooseUpstream({Ip("127.0.0.1")}, Ip("127.0.0.1"), 15001, p, kOwn);
  EXPECT_FALSE(c.addr);
  EXPECT_FALSE(RefuseUpstreamAddress(Ip("::1"), 15053, p, kOwn).empty());
  EXPECT_TRUE(RefuseUpstreamAddress(Ip("127.0.0.1"), 8080, p, kOwn).empty());
}

TEST(UpstreamChoice, AuditModeIgnoresDenyCidrsButNeverEgressdItself) {
  auto p = Compile("name: t\nmode: audit\ndeny_cidrs: [\"169.254.0.0/16\", \"127.0.0.0/8\"]\n");
  auto c = ChooseUpstream({Ip("169.254.169.254")}, Ip("169.254.169.254"), 80, p, kOwn,
                          /*apply_deny_cidrs=*/false);
  ASSERT_TRUE(c.addr);
  EXPECT_FALSE(RefuseUpstreamAddress(Ip("127.0.0.1"), 15053, p, kOwn, false).empty());
  EXPECT_TRUE(RefuseUpstreamAddress(Ip("127.0.0.1"), 8080, p, kOwn, false).empty());
}

TEST(UpstreamChoice, UnspecifiedAddressesAreNeverUpstreams) {
  auto p = Compile("name: t\nmode: audit\n");
  for (const char* a : {"0.0.0.0", "::", "::ffff:0.0.0.0"})
    EXPECT_EQ(RefuseUpstreamAddress(Ip(a), 6379, p, kOwn, false),
              std::string("address ") + Ip(a).ToString() + " is unspecified")
        << a;
  EXPECT_FALSE(ChooseUpstream({Ip("0.0.0.0")}, Ip("0.0.0.0"), 6379, p, kOwn, false).addr);
}

TEST(UpstreamChoice, OwnNetnsSandboxesNeverReachTheHostsLoopback) {
  auto p = Compile("name: t\n");
  const OwnListeners netns{15001, &kDirectory, /*refuse_loopback=*/true};
  EXPECT_NE(RefuseUpstreamAddress(Ip("127.0.0.1"), 6379, p, netns).find("host's loopback"),
            std::string::npos);
  EXPECT_NE(RefuseUpstreamAddress(Ip("::1"), 6379, p, netns), "");
  EXPECT_EQ(RefuseUpstreamAddress(Ip("127.0.0.1"), 6379, p, kOwn),
            "");  // host netns: policy decides
  auto c = ChooseUpstream({Ip("127.0.0.1"), Ip("10.1.1.1")}, Ip("127.0.0.1"), 80, p, netns);
  ASSERT_TRUE(c.addr);
  EXPECT_EQ(*c.addr, Ip("10.1.1.1"));
}

class FakeHostAddresses : public AddressSet {
 public:
  bool Contains(const policy::IpAddress& a) const override { return a == Ip("192.0.2.10"); }
};

TEST(UpstreamChoice, OwnNetnsSandboxesNeverReachTheHostsOwnAddresses) {
  auto p = Compile("name: t\n");
  const FakeHostAddresses host;
  const OwnListeners netns{15001, &kDirectory, /*refuse_loopback=*/true, &host};
  EXPECT_NE(RefuseUpstreamAddress(Ip("192.0.2.10"), 22, p, netns).find("is the host's own"),
            std::string::npos);
  EXPECT_EQ(RefuseUpstreamAddress(Ip("192.0.2.11"), 22, p, netns), "");
  const OwnListeners host_netns{15001, &kDirectory, false, &host};
  EXPECT_EQ(RefuseUpstreamAddress(Ip("192.0.2.10"), 22, p, host_netns), "");  // policy decides
}

TEST(UpstreamChoice, TheMetricsPortOfTheHostIsEgressdItself) {
  auto p = Compile("name: t\n");
  const FakeHostAddresses host;
  const OwnListeners own{15001, &kDirectory, false, &host, /*metrics_port=*/9464};
  for (const char* a : {"127.0.0.1", "::1", "192.0.2.10"})
    EXPECT_NE(RefuseUpstreamAddress(Ip(a), 9464, p, own).find("egressd itself"), std::string::npos)
        << a;
  EXPECT_EQ(RefuseUpstreamAddress(Ip("192.0.2.11"), 9464, p, own), "");  // another machine's
  EXPECT_EQ(RefuseUpstreamAddress(Ip("127.0.0.1"), 9465, p, own), "");
  EXPECT_EQ(RefuseUpstreamAddress(Ip("127.0.0.1"), 9464, p, kOwn), "");  // metrics off
}

TEST(HostAddresses, KnowsLoopback) {
  HostAddresses host;
  EXPECT_TRUE(host.Contains(Ip("127.0.0.1")));
  EXPECT_FALSE(host.Contains(Ip("192.0.2.99")));
}

TEST(UpstreamChoice, FormatAddressPort) {
  EXPECT_EQ(FormatAddressPort(Ip("10.1.2.3"), 22), "10.1.2.3:22");
  EXPECT_EQ(FormatAddressPort(Ip("::1"), 5432), "[::1]:5432");
}

TEST(UpstreamChoice, NoAnswers) {
  auto p = Compile("name: t\n");
  EXPECT_FALSE(ChooseUpstream({}, Ip("10.0.0.1"), 80, p, kOwn).addr);
}

}  // namespace
}  // namespace egressd::proxy
