// deny_response: loaded with line:column errors, expanded with its placeholders.
#include "policy/deny_response.h"

#include <gtest/gtest.h>

#include "tests/unit/policy/loader_test_helpers.h"

namespace egressd::policy {
namespace {

TEST(DenyResponse, LoadsStatusTypeAndBody) {
  Policy p = MustParse(
      "name: p\n"
      "deny_response:\n"
      "  status: 451\n"
      "  content_type: application/json\n"
      "  body: '{\"error\": \"{{reason}}\"}'\n");
  ASSERT_TRUE(p.deny_response);
  EXPECT_EQ(p.deny_response->status, 451);
  EXPECT_EQ(p.deny_response->content_type, "application/json");
  EXPECT_EQ(p.deny_response->body, "{\"error\": \"{{reason}}\"}");
}

TEST(DenyResponse, DefaultsAre403AndText) {
  Policy p = MustParse("name: p\ndeny_response: {body: blocked}\n");
  ASSERT_TRUE(p.deny_response);
  EXPECT_EQ(p.deny_response->status, 403);
  EXPECT_EQ(p.deny_response->content_type, "text/plain; charset=utf-8");
  EXPECT_FALSE(MustParse("name: p\n").deny_response);
}

TEST(DenyResponse, ErrorsSayWhereAndWhat) {
  ExpectOneError("name: p\ndeny_response:\n  status: 200\n", 3, 11, "400 to 599");
  ExpectOneError("name: p\ndeny_response:\n  status: \"403\"\n", 3, 11, "400 to 599");
  ExpectOneError("name: p\ndeny_response:\n  body: '{{host}} {{nope}}'\n", 3, 9,
                 "unknown placeholder {{nope}}");
  ExpectOneError("name: p\ndeny_response:\n  stauts: 403\n", 3, 3, "did you mean \"status\"");
  ExpectOneError("name: p\ndeny_response: [403]\n", 2, 16, "must be a mapping");
  ExpectOneError("name: p\ndeny_response: {content_type: \"a\\nb\"}\n", 2, 31, "printable");
  ExpectOneError("name: p\ndeny_response: {body: [x]}\n", 2, 23, "body must be a string");
  ExpectOneError(
      "name: p\ndeny_response: {body: '" + std::string(kMaxDenyResponseBody + 1, 'x') + "'}\n", 2,
      23, "at most 4096");
}

TEST(DenyResponse, ExpandsPlaceholdersEscapedForJson) {
  DenyResponse json{451, "application/json",
                    R"({"r":"{{reason}}","h":"{{host}}","e":{{event}},"m":"{{message}}"})"};
  DenyFacts facts{.reason = "denied_host",
                  .host = "a.test",
                  .policy = "p",
                  .rule = "",
                  .event = 12,
                  .message = "say \"no\"\n"};
  EXPECT_EQ(ExpandDenyBody(json, facts),
            R"({"r":"denied_host","h":"a.test","e":12,"m":"say \"no\"\u000a"})");
  DenyResponse text{403, "text/plain", "{{ host }} by {{policy}}: {{message}} {{ unclosed"};
  EXPECT_EQ(ExpandDenyBody(text, facts), "a.test by p: say \"no\"\n {{ unclosed");
}

}  // namespace
}  // namespace egressd::policy
