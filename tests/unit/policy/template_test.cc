#include "policy/template.h"

#include <gtest/gtest.h>

namespace egressd::policy {
namespace {

using Kind = Template::PartKind;

Template Parsed(std::string_view text) {
  std::string error;
  auto t = Template::Parse(text, &error);
  EXPECT_TRUE(t) << text << ": " << error;
  return t.value_or(Template{});
}

std::string ParseError(std::string_view text) {
  std::string error;
  EXPECT_FALSE(Template::Parse(text, &error)) << text;
  return error;
}

TEST(Template, LiteralOnly) {
  Template t = Parsed("application/json");
  ASSERT_EQ(t.parts().size(), 1u);
  EXPECT_EQ(t.parts()[0], (Template::Part{Kind::kLiteral, "application/json"}));
  EXPECT_EQ(t.text(), "application/json");
  EXPECT_FALSE(t.uses_secret());
  EXPECT_EQ(t.whole_param(), "");
}

TEST(Template, EmptyHasNoParts) {
  EXPECT_TRUE(Parsed("").parts().empty());
}

TEST(Template, Placeholders) {
  Template t = Parsed("Bearer {{secret:github_token}} for {{instance}}/{{params.org}}!");
  std::vector<Template::Part> want = {{Kind::kLiteral, "Bearer "}, {Kind::kSecret, "github_token"},
                                      {Kind::kLiteral, " for "},   {Kind::kInstance, ""},
                                      {Kind::kLiteral, "/"},       {Kind::kParam, "org"},
                                      {Kind::kLiteral, "!"}};
  EXPECT_EQ(t.parts(), want);
  EXPECT_TRUE(t.uses_secret());
  EXPECT_EQ(t.whole_param(), "");
}

TEST(Template, SpacesInsideBracesAreTrimmed) {
  Template t = Parsed("{{ secret:a.b-c_1 }}{{\tinstance }}");
  std::vector<Template::Part> want = {{Kind::kSecret, "a.b-c_1"}, {Kind::kInstance, ""}};
  EXPECT_EQ(t.parts(), want);
}

TEST(Template, WholeParam) {
  EXPECT_EQ(Parsed("{{params.hostnames}}").whole_param(), "hostnames");
  EXPECT_EQ(Parsed("{{ params.hostnames }}").whole_param(), "hostnames");
  EXPECT_EQ(Parsed("x{{params.hostnames}}").whole_param(), "");
  EXPECT_EQ(Parsed("{{params.a}}{{params.b}}").whole_param(), "");
}

TEST(Template, SingleBracesAreLiteral) {
  Template t = Parsed("{\"a\": {}} }}");
  ASSERT_EQ(t.parts().size(), 1u);
  EXPECT_EQ(t.parts()[0].text, "{\"a\": {}} }}");
}

TEST(Template, Errors) {
  EXPECT_EQ(ParseError("Bearer {{secret:x"),
            "unclosed \"{{\" at column 8 (a placeholder ends with \"}}\")");
  EXPECT_EQ(ParseError("a{{foo}}"),
            "unknown placeholder \"{{foo}}\" at column 2; use {{secret:NAME}}, {{params.NAME}} "
            "or {{instance}}");
  EXPECT_EQ(ParseError("{{}}"),
            "unknown placeholder \"{{}}\" at column 1; use {{secret:NAME}}, {{params.NAME}} or "
            "{{instance}}");
  EXPECT_EQ(ParseError("{{secret:}}"),
            "bad secret name \"\" in \"{{secret:}}\" at column 1: use 1-128 letters, digits, "
            "'_', '-' and '.'");
  EXPECT_NE(ParseError("{{secret:a/b}}").find("bad secret name \"a/b\""), std::string::npos);
  EXPECT_NE(ParseError("x {{params.a.b}}")
                .find("bad parameter name \"a.b\" in "
                      "\"{{params.a.b}}\" at column 3"),
            std::string::npos);
  EXPECT_NE(ParseError("{{params.}}").find("bad parameter name"), std::string::npos);
  EXPECT_NE(ParseError("{{Instance}}").find("unknown placeholder"), std::string::npos);
  EXPECT_NE(ParseError("{{secret:" + std::string(129, 'a') + "}}").find("bad secret name"),
            std::string::npos);
}

TEST(Template, ParseWithoutErrorPointer) {
  EXPECT_FALSE(Template::Parse("{{", nullptr));
}

TEST(Template, EqualityIsByText) {
  EXPECT_EQ(Parsed("a{{instance}}"), Parsed("a{{instance}}"));
  EXPECT_FALSE(Parsed("a{{instance}}") == Parsed("a{{ instance}}"));
}

TEST(IsValidSecretName, Rules) {
  EXPECT_TRUE(IsValidSecretName("github_token"));
  EXPECT_TRUE(IsValidSecretName("A.b-9_"));
  EXPECT_TRUE(IsValidSecretName(std::string(128, 'x')));
  EXPECT_FALSE(IsValidSecretName(std::string(129, 'x')));
  EXPECT_FALSE(IsValidSecretName(""));
  EXPECT_FALSE(IsValidSecretName("a/b"));
  EXPECT_FALSE(IsValidSecretName("a b"));
  EXPECT_FALSE(IsValidSecretName("a\n"));
  EXPECT_FALSE(IsValidSecretName("."));
  EXPECT_FALSE(IsValidSecretName(".."));
  EXPECT_TRUE(IsValidSecretName("...x"));
}

}  // namespace
}  // namespace egressd::policy
