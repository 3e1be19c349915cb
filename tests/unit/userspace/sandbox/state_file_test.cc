#include "userspace/sandbox/state_file.h"

#include <gtest/gtest.h>

#include "policy/host_glob.h"

namespace egressd::sandbox {
namespace {

std::string ErrorOf(std::string_view text) {
  auto r = ParseStateFile(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.status().message();
}

SavedState TwoSandboxes() {
  SavedState state;
  state.next_policy_set_id = 9;
  state.sandboxes.push_back({1,
                             "/sys/fs/cgroup/egressd/a",
                             4242,
                             "a",
                             {PolicySource::Kind::kName, "web"},
                             3,
                             "",
                             40001,
                             40002,
                             false,
                             0,
                             0,
                             {}});
  state.sandboxes.push_back({2,
                             "/sys/fs/cgroup/egressd/b",
                             UINT64_MAX,
                             "b",
                             {PolicySource::Kind::kFile, "/etc/egressd/b.yaml"},
                             8,
                             "/run/egressd/netns/b",
                             65535,
                             1,
                             true,
                             1234,
                             987654321,
                             {}});
  policy::InstanceRules& rules = state.sandboxes.back().rules;
  rules.allowed_hosts = {"github.com", "*.npmjs.org"};
  rules.denied_hosts = {"gist.github.com"};
  rules.by_host.push_back({"api.github.com", {"github-auth", {}}});
  rules.catch_all = policy::HandlerBinding{
      "allow-hosts",
      {{"hostnames", std::vector<std::string>{"github.com", "registry.npmjs.org"}},
       {"note", std::string("x")}}};
  return state;
}

TEST(StateFileTest, ReadsBackWhatItWrites) {
  SavedState state = TwoSandboxes();
  auto again = ParseStateFile(StateFileText(state));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, state);
}

TEST(StateFileTest, ReadsVersionOneWithDefaults) {
  auto r = ParseStateFile(R"({"version":1,"next_policy_set_id":2,"sandboxes":[
      {"id":1,"cgroup":"/c","cgroup_id":5,"instance":"i","policy_kind":"name",
       "policy":"p","policy_set_id":1}]})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->sandboxes.size(), 1u);
  EXPECT_EQ(r->sandboxes[0].proxy_port, 0);
  EXPECT_EQ(r->sandboxes[0].netns, "");
  EXPECT_FALSE(r->sandboxes[0].transient);
}

TEST(StateFileTest, RefusesRulesThatWouldNotMeanWhatTheySaid) {
  auto rules = [](const std::string& json) {
    return ErrorOf(R"({"version":3,"next_policy_set_id":2,"sandboxes":[
      {"id":1,"cgroup":"/c","cgroup_id":5,"instance":"i","policy_kind":"name",
       "policy":"p","policy_set_id":1,"rules":)" +
                   json + "}]}");
  };
  EXPECT_EQ(
      rules(R"({"allowed_hosts":["bad host"]})"), "sandboxes[0].rules.allowed_hosts[0]: " + [] {
        std::string e;
        policy::NormalizeHostPattern("bad host", &e);
        return e;
      }());
  EXPECT_EQ(rules(R"({"denied_hosts":"x"})"),
            "sandboxes[0].rules.denied_hosts: must be a list of host globs");
  EXPECT_EQ(rules(R"({"by_host":[{"handler":"h"}]})"),
            "sandboxes[0].rules.by_host[0].host: must be a host glob");
  EXPECT_EQ(rules(R"({"catch_all":{"handler":""}})"),
            "sandboxes[0].rules.catch_all.handler: must be a handler name");
  EXPECT_EQ(rules(R"({"catch_all":{"handler":"h","params":{"a":[1]}}})"),
            "sandboxes[0].rules.catch_all.params.a: every entry must be a string");
  EXPECT_EQ(rules(R"({"catch_all":{"handler":"h","params":{"a":{}}}})"),
            "sandboxes[0].rules.catch_all.params.a: must be a string or a list of strings");
}

TEST(StateFileTest, RefusesWithTheFieldNamed) {
  EXPECT_EQ(ErrorOf(""), "not JSON");
  EXPECT_EQ(ErrorOf("{\"version\":\"\xc3\x28\"}"), "not JSON");  // invalid UTF-8
  EXPECT_EQ(ErrorOf("[]"), "not a JSON object");
  EXPECT_EQ(ErrorOf(R"({"next_policy_set_id":1,"sandboxes":[]})"), "version: missing");
  EXPECT_EQ(ErrorOf(R"({"version":4,"next_policy_set_id":1,"sandboxes":[]})"),
            "unsupported state version 4");
  EXPECT_EQ(ErrorOf(R"({"version":2.5,"next_policy_set_id":1,"sandboxes":[]})"),
            "version: must be an integer from -2147483648 to 2147483647");
  EXPECT_EQ(ErrorOf(R"({"version":2,"next_policy_set_id":4294967296,"sandboxes":[]})"),
            "next_policy_set_id: must be an integer from 0 to 4294967295");
  EXPECT_EQ(ErrorOf(R"({"version":2,"next_policy_set_id":1,"sandboxes":{}})"),
            "sandboxes: must be a list");
  EXPECT_EQ(ErrorOf(R"({"version":2,"next_policy_set_id":1,"sandboxes":[7]})"),
            "sandboxes[0]: must be an object");
}

TEST(StateFileTest, RefusesOutOfRangeAndUnknownValues) {
  // nlohmann's get<uint16_t>() would have read 65536 as port 0.
  SavedState state = TwoSandboxes();
  std::string text = StateFileText(state);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  EXPECT_EQ(ErrorOf(with("\"proxy_port\": 65535", "\"proxy_port\": 65536")),
            "sandboxes[1].proxy_port: must be an integer from 0 to 65535");
  EXPECT_EQ(ErrorOf(with("\"dns_port\": 40002", "\"dns_port\": -1")),
            "sandboxes[0].dns_port: must be an integer from 0 to 65535");
  EXPECT_EQ(ErrorOf(with("\"policy_kind\": \"file\"", "\"policy_kind\": \"url\"")),
            "sandboxes[1].policy_kind: must be \"name\" or \"file\"");
  EXPECT_EQ(ErrorOf(with("\"transient\": true", "\"transient\": 1")),
            "sandboxes[1].transient: must be true or false");
  EXPECT_EQ(ErrorOf(with("\"cgroup\": \"/sys/fs/cgroup/egressd/a\",", "")),
            "sandboxes[0].cgroup: missing");
  EXPECT_EQ(ErrorOf(with("\"id\": 2", "\"id\": 1")), "sandboxes[1].id: 1 appears twice");
}

}  // namespace
}  // namespace egressd::sandbox
