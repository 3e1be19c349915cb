#include "policy/handler_eval.h"

#include <gtest/gtest.h>

#include "handler_builders.h"

namespace egressd::policy {
namespace {

using namespace test_handlers;

const MapSecrets kSecrets({{"github_token", "ghp_SECRET"},
                           {"pw", "p@ss:word"},
                           {"crlf", "a\r\nInjected: 1"},
                           {"nul", std::string("a\0b", 3)},
                           {"bad_mode", "!file is readable by group or others"}});

HandlerResult Eval(const Handler& h, RequestFacts request = {"api.github.com", "GET", "/repos"},
                   const Params* params = nullptr, StepScope scope = StepScope::kAll) {
  TemplateContext context{"job-42", params, &kSecrets};
  return EvaluateHandler(h, context, request, scope);
}

TEST(EvaluateHandler, EmptyHandlerAllowsWithoutEdits) {
  HandlerResult r = Eval(MakeHandler("h", {}));
  EXPECT_FALSE(r.refused);
  EXPECT_TRUE(r.edits.empty());
  EXPECT_FALSE(r.credential);
}

TEST(EvaluateHandler, SetHeaderWithSecretIsACredential) {
  HandlerResult r = Eval(MakeHandler(
      "github-auth",
      {ValueStep(StepKind::kSetHeader, "Authorization", "Bearer {{secret:github_token}}"),
       ValueStep(StepKind::kSetHeader, "X-Instance", "{{instance}}")}));
  ASSERT_FALSE(r.refused) << r.reason;
  ASSERT_EQ(r.edits.size(), 2u);
  EXPECT_EQ(r.edits[0].kind, RequestEdit::Kind::kSetHeader);
  EXPECT_EQ(r.edits[0].name, "Authorization");
  EXPECT_EQ(r.edits[0].value, "Bearer ghp_SECRET");
  EXPECT_EQ(r.edits[1].value, "job-42");
  EXPECT_TRUE(r.credential);
}

TEST(EvaluateHandler, EditsWithoutSecretAreNoCredential) {
  Params params{{"org", std::string("acme")}};
  HandlerResult r = Eval(MakeHandler("h", {ValueStep(StepKind::kSetQuery, "org", "{{params.org}}"),
                                           RemoveHeaderStep("Cookie")}),
                         {"a.com", "GET", "/"}, &params);
  ASSERT_FALSE(r.refused) << r.reason;
  ASSERT_EQ(r.edits.size(), 2u);
  EXPECT_EQ(r.edits[0].kind, RequestEdit::Kind::kSetQuery);
  EXPECT_EQ(r.edits[0].name, "org");
  EXPECT_EQ(r.edits[0].value, "acme");
  EXPECT_EQ(r.edits[1].kind, RequestEdit::Kind::kRemoveHeader);
  EXPECT_EQ(r.edits[1].name, "Cookie");
  EXPECT_FALSE(r.credential);
}

TEST(EvaluateHandler, BasicAuth) {
  HandlerResult r = Eval(MakeHandler("h", {BasicAuthStep("bot-{{instance}}", "{{secret:pw}}")}));
  ASSERT_FALSE(r.refused) << r.reason;
  ASSERT_EQ(r.edits.size(), 1u);
  EXPECT_EQ(r.edits[0].name, "Authorization");
  EXPECT_EQ(r.edits[0].value, BasicAuthorization("bot-job-42", "p@ss:word"));
  EXPECT_TRUE(r.credential);
  HandlerResult colon = Eval(MakeHandler("h", {BasicAuthStep("a:b", "x")}));
  EXPECT_TRUE(colon.refused);
  EXPECT_EQ(colon.status, 503);
}

TEST(BasicAuthorization, Base64) {
  EXPECT_EQ(BasicAuthorization("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  EXPECT_EQ(BasicAuthorization("", ""), "Basic Og==");
  EXPECT_EQ(BasicAuthorization("a", ""), "Basic YTo=");
  EXPECT_EQ(BasicAuthorization("ab", ""), "Basic YWI6");
  EXPECT_EQ(BasicAuthorization("\xff\xfe", "\x01"), "Basic //46AQ==");
}

TEST(EvaluateHandler, AllowHostsWithListParam) {
  Params params{{"hostnames", std::vector<std::string>{"github.com", "*.npmjs.org"}}};
  Handler h =
      MakeHandler("allow-hosts", {ListStep(StepKind::kAllowHosts, {"{{params.hostnames}}"})});
  EXPECT_FALSE(Eval(h, {"github.com", "", ""}, &params).refused);
  EXPECT_FALSE(Eval(h, {"registry.npmjs.org", "", ""}, &params).refused);
  HandlerResult r = Eval(h, {"evil.com", "", ""}, &params);
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.step, "allow_hosts (step 1)");
  EXPECT_EQ(r.reason,
            "handler \"allow-hosts\" step 1 (allow_hosts): host \"evil.com\" is not allowed");
}

TEST(EvaluateHandler, AllowHostsWithStringParamAndTemplateEntry) {
  Params params{{"h", std::string("GitHub.com.")}};
  Handler h = MakeHandler(
      "h", {ListStep(StepKind::kAllowHosts, {"{{params.h}}", "{{instance}}.internal"})});
  EXPECT_FALSE(Eval(h, {"github.com", "", ""}, &params).refused);
  EXPECT_FALSE(Eval(h, {"job-42.internal", "", ""}, &params).refused);
  EXPECT_TRUE(Eval(h, {"job-43.internal", "", ""}, &params).refused);
}

TEST(EvaluateHandler, BadExpandedHostPatternRefuses503) {
  Params params{{"h", std::vector<std::string>{"a..b"}}};
  Handler h = MakeHandler("h", {ListStep(StepKind::kDenyHosts, {"{{params.h}}"})});
  HandlerResult r = Eval(h, {"x.com", "", ""}, &params);
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 503);
}

TEST(EvaluateHandler, SecretInAListEntryRefusedWithoutTheValue) {
  Handler h = MakeHandler("h", {ListStep(StepKind::kDenyHosts, {"{{secret:github_token}}"})});
  HandlerResult r = Eval(h, {"a.com", "", ""});
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.reason, "handler \"h\" step 1 (deny_hosts): an entry cannot carry a secret");
}

TEST(EvaluateHandler, DenyHosts) {
  Handler h = MakeHandler("h", {ListStep(StepKind::kDenyHosts, {"*.evil.com"}, 451)});
  EXPECT_FALSE(Eval(h, {"good.com", "", ""}).refused);
  HandlerResult r = Eval(h, {"a.evil.com", "", ""});
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 451);
  EXPECT_EQ(r.reason, "handler \"h\" step 1 (deny_hosts): host \"a.evil.com\" is denied");
}

TEST(EvaluateHandler, DenyWithAndWithoutBody) {
  HandlerResult r = Eval(MakeHandler("no-http", {DenyStep("network locked after setup")}));
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.step, "deny (step 1)");
  EXPECT_EQ(r.reason, "handler \"no-http\" step 1 (deny): network locked after setup");
  HandlerResult d = Eval(MakeHandler("no-http", {DenyStep("", 429)}));
  EXPECT_EQ(d.status, 429);
  EXPECT_EQ(d.reason, "handler \"no-http\" step 1 (deny): denied");
}

TEST(EvaluateHandler, FirstRefusalEndsAndDropsEdits) {
  Handler h = MakeHandler(
      "h", {ValueStep(StepKind::kSetHeader, "A", "{{secret:github_token}}"),
            ListStep(StepKind::kAllowMethods, {"GET"}, 405), DenyStep("never reached", 500)});
  HandlerResult r = Eval(h, {"a.com", "POST", "/"});
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.step, "allow_methods (step 2)");
  EXPECT_EQ(r.reason, "handler \"h\" step 2 (allow_methods): method POST is not allowed");
  EXPECT_TRUE(r.edits.empty());
  EXPECT_FALSE(r.credential);
}

TEST(EvaluateHandler, AllowMethodsIsExact) {
  Handler h = MakeHandler("h", {ListStep(StepKind::kAllowMethods, {"GET", "HEAD"})});
  EXPECT_FALSE(Eval(h, {"a.com", "HEAD", "/"}).refused);
  EXPECT_TRUE(Eval(h, {"a.com", "get", "/"}).refused);
}

TEST(EvaluateHandler, AllowPaths) {
  Handler h = MakeHandler("h", {ListStep(StepKind::kAllowPaths, {"/repos/*", "/user"}, 404)});
  EXPECT_FALSE(Eval(h, {"a.com", "GET", "/repos/a/b/pulls"}).refused);
  EXPECT_FALSE(Eval(h, {"a.com", "GET", "/user"}).refused);
  HandlerResult r = Eval(h, {"a.com", "GET", "/user/keys"});
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.reason, "handler \"h\" step 1 (allow_paths): path \"/user/keys\" is not allowed");
}

TEST(EvaluateHandler, ScopeFiltersSteps) {
  Handler h = MakeHandler(
      "h", {ListStep(StepKind::kAllowHosts, {"a.com"}), ListStep(StepKind::kAllowMethods, {"GET"}),
            ValueStep(StepKind::kSetHeader, "X", "1")});
  HandlerResult host_only = Eval(h, {"a.com", "POST", "/"}, nullptr, StepScope::kHostOnly);
  EXPECT_FALSE(host_only.refused);
  EXPECT_TRUE(host_only.edits.empty());
  HandlerResult request_only = Eval(h, {"b.com", "GET", "/"}, nullptr, StepScope::kRequestOnly);
  EXPECT_FALSE(request_only.refused);
  EXPECT_EQ(request_only.edits.size(), 1u);
  EXPECT_TRUE(Eval(h, {"b.com", "GET", "/"}, nullptr, StepScope::kHostOnly).refused);
  EXPECT_TRUE(Eval(h, {"a.com", "PUT", "/"}, nullptr, StepScope::kRequestOnly).refused);
}

TEST(EvaluateHandler, MissingSecretNamesSecretAndInstanceNotValue) {
  Handler h = MakeHandler(
      "h", {ValueStep(StepKind::kSetHeader, "Authorization", "Bearer {{secret:missing}}")});
  HandlerResult r = Eval(h);
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(
      r.reason,
      "handler \"h\" step 1 (set_header): secret \"missing\" is not set for instance \"job-42\"");
  EXPECT_TRUE(r.edits.empty());
  HandlerResult bad =
      Eval(MakeHandler("h", {ValueStep(StepKind::kSetHeader, "A", "{{secret:bad_mode}}")}));
  EXPECT_EQ(bad.status, 503);
  EXPECT_EQ(bad.reason,
            "handler \"h\" step 1 (set_header): secret \"bad_mode\" is not set for instance "
            "\"job-42\" (file is readable by group or others)");
}

TEST(EvaluateHandler, NoSecretSourceMeansMissing) {
  Handler h = MakeHandler("h", {ValueStep(StepKind::kSetHeader, "A", "{{secret:github_token}}")});
  TemplateContext context{"i", nullptr, nullptr};
  HandlerResult r = EvaluateHandler(h, context, {"a.com", "GET", "/"}, StepScope::kAll);
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 503);
}

TEST(EvaluateHandler, CrLfNulRefusedWithoutTheValue) {
  for (const char* name : {"crlf", "nul"}) {
    Handler h = MakeHandler(
        "h", {ValueStep(StepKind::kSetHeader, "X-Token", "{{secret:" + std::string(name) + "}}")});
    HandlerResult r = Eval(h);
    EXPECT_TRUE(r.refused) << name;
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.reason,
              "handler \"h\" step 1 (set_header): the value of header \"X-Token\" would contain "
              "CR, LF or NUL after expansion");
    EXPECT_EQ(r.reason.find("Injected"), std::string::npos);
  }
  Params params{{"v", std::string("a\nb")}};
  EXPECT_EQ(Eval(MakeHandler("h", {ValueStep(StepKind::kSetQuery, "q", "{{params.v}}")}),
                 {"a.com", "GET", "/"}, &params)
                .status,
            503);
  EXPECT_EQ(Eval(MakeHandler("h", {BasicAuthStep("u", "{{secret:crlf}}")})).status, 503);
  Params list{{"m", std::vector<std::string>{"GET\r\n"}}};
  EXPECT_EQ(Eval(MakeHandler("h", {ListStep(StepKind::kAllowMethods, {"{{params.m}}"})}),
                 {"a.com", "GET", "/"}, &list)
                .status,
            503);
}

TEST(EvaluateHandler, TooLongValueRefused) {
  Params params{{"v", std::string(64 * 1024 + 1, 'a')}};
  HandlerResult r = Eval(MakeHandler("h", {ValueStep(StepKind::kSetHeader, "X", "{{params.v}}")}),
                         {"a.com", "GET", "/"}, &params);
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.reason.find("longer than 65536 bytes"), std::string::npos);
  Params fits{{"v", std::string(64 * 1024, 'a')}};
  EXPECT_FALSE(Eval(MakeHandler("h", {ValueStep(StepKind::kSetHeader, "X", "{{params.v}}")}),
                    {"a.com", "GET", "/"}, &fits)
                   .refused);
}

TEST(EvaluateHandler, MissingOrListParamRefused503) {
  Handler h = MakeHandler("h", {ValueStep(StepKind::kSetHeader, "X", "{{params.v}}")});
  HandlerResult r = Eval(h);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.reason,
            "handler \"h\" step 1 (set_header): parameter \"v\" is not given by the binding");
  Params list{{"v", std::vector<std::string>{"a"}}};
  EXPECT_EQ(Eval(h, {"a.com", "GET", "/"}, &list).status, 503);
  Handler hosts = MakeHandler("h", {ListStep(StepKind::kAllowHosts, {"{{params.v}}"})});
  EXPECT_EQ(Eval(hosts, {"a.com", "", ""}).status, 503);
}

TEST(PathGlobMatch, Patterns) {
  EXPECT_TRUE(PathGlobMatch("/a", "/a"));
  EXPECT_FALSE(PathGlobMatch("/a", "/a/"));
  EXPECT_FALSE(PathGlobMatch("/a", "/A"));
  EXPECT_TRUE(PathGlobMatch("/a/*", "/a/"));
  EXPECT_TRUE(PathGlobMatch("/a/*", "/a/b/c"));
  EXPECT_FALSE(PathGlobMatch("/a/*", "/a"));
  EXPECT_TRUE(PathGlobMatch("*", ""));
  EXPECT_TRUE(PathGlobMatch("*", "/x"));
  EXPECT_TRUE(PathGlobMatch("/*/pulls", "/o/r/pulls"));
  EXPECT_FALSE(PathGlobMatch("/*/pulls", "/o/r/pulls/1"));
  EXPECT_TRUE(PathGlobMatch("/*.tgz", "/pkg/-/pkg-1.0.tgz"));
  EXPECT_TRUE(PathGlobMatch("**a*", "bab"));
  EXPECT_FALSE(PathGlobMatch("", "/"));
  EXPECT_TRUE(PathGlobMatch("", ""));
  // Worst case stays fast.
  EXPECT_FALSE(PathGlobMatch("*a*a*a*a*a*a*a*a*b", std::string(10000, 'a')));
}

}  // namespace
}  // namespace egressd::policy
