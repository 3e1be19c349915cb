#include "policy/handler.h"

#include <gtest/gtest.h>

#include "handler_builders.h"
#include "policy/host_glob.h"

namespace egressd::policy {
namespace {

using namespace test_handlers;

TEST(StepKind, NamesAndLevels) {
  EXPECT_STREQ(StepKindName(StepKind::kAllowHosts), "allow_hosts");
  EXPECT_STREQ(StepKindName(StepKind::kDenyHosts), "deny_hosts");
  EXPECT_STREQ(StepKindName(StepKind::kDeny), "deny");
  EXPECT_STREQ(StepKindName(StepKind::kAllowMethods), "allow_methods");
  EXPECT_STREQ(StepKindName(StepKind::kAllowPaths), "allow_paths");
  EXPECT_STREQ(StepKindName(StepKind::kSetHeader), "set_header");
  EXPECT_STREQ(StepKindName(StepKind::kRemoveHeader), "remove_header");
  EXPECT_STREQ(StepKindName(StepKind::kSetQuery), "set_query");
  EXPECT_STREQ(StepKindName(StepKind::kBasicAuth), "basic_auth");
  EXPECT_FALSE(IsRequestLevel(StepKind::kAllowHosts));
  EXPECT_FALSE(IsRequestLevel(StepKind::kDenyHosts));
  EXPECT_FALSE(IsRequestLevel(StepKind::kDeny));
  EXPECT_TRUE(IsRequestLevel(StepKind::kAllowMethods));
  EXPECT_TRUE(IsRequestLevel(StepKind::kAllowPaths));
  EXPECT_TRUE(IsRequestLevel(StepKind::kSetHeader));
  EXPECT_TRUE(IsRequestLevel(StepKind::kRemoveHeader));
  EXPECT_TRUE(IsRequestLevel(StepKind::kSetQuery));
  EXPECT_TRUE(IsRequestLevel(StepKind::kBasicAuth));
}

TEST(Handler, NeedsRequestsAndUsesSecrets) {
  Handler hosts = MakeHandler("h", {ListStep(StepKind::kAllowHosts, {"a.com"}), DenyStep()});
  EXPECT_FALSE(hosts.needs_requests());
  EXPECT_FALSE(hosts.uses_secrets());
  Handler header =
      MakeHandler("h", {ValueStep(StepKind::kSetHeader, "X-Instance", "{{instance}}")});
  EXPECT_TRUE(header.needs_requests());
  EXPECT_FALSE(header.uses_secrets());
  Handler auth = MakeHandler("h", {BasicAuthStep("bot", "{{secret:pw}}")});
  EXPECT_TRUE(auth.uses_secrets());
  Handler query = MakeHandler("h", {ValueStep(StepKind::kSetQuery, "key", "{{secret:k}}")});
  EXPECT_TRUE(query.uses_secrets());
}

std::map<std::string, Handler> Handlers() {
  std::map<std::string, Handler> m;
  m["allow-hosts"] = MakeHandler(
      "allow-hosts", {ListStep(StepKind::kAllowHosts, {"{{params.hostnames}}", "x.com"})});
  m["org-header"] =
      MakeHandler("org-header", {ValueStep(StepKind::kSetHeader, "X-Org", "org={{params.org}}")});
  m["methods"] = MakeHandler("methods", {ListStep(StepKind::kAllowMethods, {"{{params.m}}"})});
  return m;
}

TEST(CheckBinding, Valid) {
  auto h = Handlers();
  EXPECT_EQ(CheckBinding(
                h, {"allow-hosts", {{"hostnames", std::vector<std::string>{"a.com", "*.b.org"}}}}),
            "");
  EXPECT_EQ(CheckBinding(h, {"allow-hosts", {{"hostnames", std::string("a.com")}}}), "");
  EXPECT_EQ(CheckBinding(h, {"org-header", {{"org", std::string("acme")}}}), "");
  EXPECT_EQ(CheckBinding(h, {"methods", {{"m", std::vector<std::string>{"GET", "HEAD"}}}}), "");
}

TEST(CheckBinding, Errors) {
  auto h = Handlers();
  EXPECT_EQ(CheckBinding(h, {"nope", {}}), "handler \"nope\" is not defined");
  EXPECT_EQ(CheckBinding(h, {"allow-hosts", {}}),
            "handler \"allow-hosts\" uses {{params.hostnames}} in allow_hosts (step 1), which "
            "the binding does not give");
  EXPECT_EQ(CheckBinding(h, {"org-header", {{"org", std::vector<std::string>{"a"}}}}),
            "parameter \"org\" is a list, but handler \"org-header\" uses it in set_header (step "
            "1) where only a string fits (a list fits only as a whole entry of allow_hosts, "
            "deny_hosts, allow_methods or allow_paths)");
  EXPECT_EQ(
      CheckBinding(h, {"org-header", {{"org", std::string("a")}, {"orgg", std::string("b")}}}),
      "parameter \"orgg\" is not used by handler \"org-header\" (a typo?)");
  EXPECT_EQ(
      CheckBinding(h,
                   {"allow-hosts", {{"hostnames", std::vector<std::string>{"a.com", "a..com"}}}}),
      "parameter \"hostnames\": allow_hosts: " + [] {
        std::string err;
        NormalizeHostPattern("a..com", &err);
        return err;
      }());
  EXPECT_EQ(CheckBinding(h, {"methods", {{"m", std::vector<std::string>{""}}}}),
            "parameter \"m\": an empty entry");
}

}  // namespace
}  // namespace egressd::policy
