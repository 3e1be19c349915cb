#include "userspace/control/control_request.h"

#include <gtest/gtest.h>

namespace egressd::control {
namespace {

std::string ErrorOf(std::string_view line) {
  auto r = ParseControlRequest(line);
  EXPECT_FALSE(r.ok()) << line;
  return r.ok() ? "" : r.status().message();
}

TEST(ControlRequestTest, ReadsWhatEgressctlSends) {
  auto r = ParseControlRequest(
      R"({"cmd":"attach","cgroup":"/sys/fs/cgroup/egressd/a","policy":"web","instance":"a",)"
      R"("netns":"host","transient":true})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->cmd, "attach");
  EXPECT_EQ(r->cgroup, "/sys/fs/cgroup/egressd/a");
  EXPECT_EQ(r->policy, "web");
  EXPECT_EQ(r->instance, "a");
  EXPECT_EQ(r->netns, "host");
  EXPECT_EQ(r->transient, true);
  EXPECT_FALSE(r->after_seq.has_value());

  auto events =
      ParseControlRequest(R"({"cmd":"events","after_seq":18446744073709551615,"limit":0})");
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->after_seq, UINT64_MAX);
  EXPECT_EQ(events->limit, 0u);
}

TEST(ControlRequestTest, NullIsAbsentAndUnknownKeysAreIgnored) {
  auto r = ParseControlRequest(R"({"cmd":"list","cgroup":null,"newer_field":[1,2]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cmd, "list");
  EXPECT_EQ(r->cgroup, "");
  auto empty = ParseControlRequest("{}");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->cmd, "");
}

TEST(ControlRequestTest, RefusesWhatIsNotAnObject) {
  EXPECT_EQ(ErrorOf(""), "request is not a JSON object");
  EXPECT_EQ(ErrorOf("[1]"), "request is not a JSON object");
  EXPECT_EQ(ErrorOf(R"({"cmd":"status")"), "request is not a JSON object");
  EXPECT_EQ(ErrorOf("{\"cmd\":\"\xff\"}"), "request is not a JSON object");  // not UTF-8
  EXPECT_EQ(ErrorOf(std::string(100000, '[') + std::string(100000, ']')),
            "request is not a JSON object");
}

TEST(ControlRequestTest, RefusesWrongTypesByName) {
  // {"cmd":5} used to crash the daemon: the refusal was logged with
  // json::value("cmd", "?"), which throws for a number, outside any try.
  EXPECT_EQ(ErrorOf(R"({"cmd":5})"), "\"cmd\" must be a string");
  EXPECT_EQ(ErrorOf(R"({"cmd":"detach","cgroup":["/x"]})"), "\"cgroup\" must be a string");
  EXPECT_EQ(ErrorOf(R"({"cmd":"attach","transient":"yes"})"),
            "\"transient\" must be true or false");
  EXPECT_EQ(ErrorOf(R"({"cmd":"events","after_seq":-1})"),
            "\"after_seq\" must be an integer from 0 to 2^64-1");
  EXPECT_EQ(ErrorOf(R"({"cmd":"events","limit":1.5})"),
            "\"limit\" must be an integer from 0 to 2^64-1");
  EXPECT_EQ(ErrorOf(R"({"cmd":"events","limit":1e999})"), "request is not a JSON object");
  EXPECT_EQ(ErrorOf(R"({"cmd":"events","after_seq":18446744073709551616})"),
            "\"after_seq\" must be an integer from 0 to 2^64-1");
}

TEST(ControlRequestTest, ReadsASecretSetAndNeverEchoesItsValue) {
  auto r = ParseControlRequest(
      R"({"cmd":"secret_set","name":"gh-token","instance":"job-1","value":"tok\nen"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name, "gh-token");
  EXPECT_EQ(r->instance, "job-1");
  EXPECT_EQ(r->value, "tok\nen");
  // A wrong type is refused by the field's name, without its content.
  std::string error = ErrorOf(R"({"cmd":"secret_set","name":"x","value":["s3cr3t"]})");
  EXPECT_EQ(error, "\"value\" must be a string");
}

TEST(ControlRequestTest, DuplicateKeysTakeTheLast) {
  auto r = ParseControlRequest(R"({"cmd":"list","cmd":"status"})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cmd, "status");
}

TEST(ControlRequestTest, ReadsTheRuntimeRulesFields) {
  auto r = ParseControlRequest(
      R"({"cmd":"handler_set","instance":"job-42","handler":"allow-hosts","host":"*.test",)"
      R"("params":{"hostnames":["a.test"]},"action":"allow","hosts":["a.test","b.test"]})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->handler, "allow-hosts");
  EXPECT_EQ(r->host, "*.test");
  ASSERT_TRUE(r->params.has_value());
  EXPECT_EQ((*r->params)["hostnames"][0], "a.test");
  EXPECT_EQ(r->action, "allow");
  EXPECT_EQ(r->hosts, (std::vector<std::string>{"a.test", "b.test"}));
  EXPECT_EQ(ErrorOf(R"({"cmd":"handler_set","params":[1]})"), "\"params\" must be a JSON object");
  EXPECT_EQ(ErrorOf(R"({"cmd":"hosts","hosts":"a.test"})"), "\"hosts\" must be a list of strings");
  EXPECT_EQ(ErrorOf(R"({"cmd":"hosts","hosts":["a",1]})"), "\"hosts\" must be a list of strings");
}

TEST(ControlRequestTest, RoundTripsThroughItsJson) {
  ControlRequest request;
  request.cmd = "events";
  request.instance = "sb-1";
  request.after_seq = 7;
  request.limit = 10;
  request.transient = false;
  request.handler = "h";
  request.host = "*.test";
  request.params = nlohmann::json{{"k", "v"}};
  request.action = "deny";
  request.hosts = {"a.test"};
  request.name = "token";
  request.value = "v";
  auto again = ParseControlRequest(ControlRequestJson(request).dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, request);
}

}  // namespace
}  // namespace egressd::control
