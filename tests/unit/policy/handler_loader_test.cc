#include "policy/handler_loader.h"

#include <gtest/gtest.h>

#include "loader_test_helpers.h"

namespace egressd::policy {
namespace {

const char* kHandlers = R"(name: hosted
handlers:
  github-auth:
    - set_header: {name: Authorization, value: "Bearer {{secret:github_token}}"}
    - remove_header: Cookie
    - remove_header: {name: X-Debug}
  allow-hosts:
    - allow_hosts: "{{params.hostnames}}"
  api-only:
    - deny_hosts: {hosts: ["*.evil.com"], status: 451}
    - allow_methods: [GET, HEAD]
    - allow_paths: {paths: ["/repos/*", "/user"], status: 404}
    - set_query: {name: per_page, value: "100"}
    - basic_auth: {user: "bot-{{instance}}", password: "{{secret:pw}}"}
  no-http:
    - deny: {status: 403, body: "network locked after setup"}
  closed:
    - deny: {}
  closed-too:
    - deny:
by_host:
  "api.github.com": github-auth
  "*.Example.com.": {handler: api-only}
  "npm.internal": {handler: allow-hosts, params: {hostnames: ["npm.internal"]}}
catch_all: {handler: allow-hosts, params: {hostnames: "github.com"}}
allow_plaintext_credentials: true
)";

TEST(LoadHandlers, FullExample) {
  Policy p = MustParse(kHandlers);
  ASSERT_EQ(p.handlers.size(), 6u);
  const Handler& auth = p.handlers.at("github-auth");
  EXPECT_EQ(auth.name, "github-auth");
  ASSERT_EQ(auth.steps.size(), 3u);
  EXPECT_EQ(auth.steps[0].kind, StepKind::kSetHeader);
  EXPECT_EQ(auth.steps[0].line, 4);
  EXPECT_EQ(auth.steps[0].name, "Authorization");
  EXPECT_EQ(auth.steps[0].value.text(), "Bearer {{secret:github_token}}");
  EXPECT_TRUE(auth.uses_secrets());
  EXPECT_EQ(auth.steps[1].kind, StepKind::kRemoveHeader);
  EXPECT_EQ(auth.steps[1].name, "Cookie");
  EXPECT_EQ(auth.steps[2].name, "X-Debug");

  const Handler& hosts = p.handlers.at("allow-hosts");
  ASSERT_EQ(hosts.steps.size(), 1u);
  ASSERT_EQ(hosts.steps[0].entries.size(), 1u);
  EXPECT_EQ(hosts.steps[0].entries[0].whole_param(), "hostnames");
  EXPECT_EQ(hosts.steps[0].status, 403);

  const Handler& api = p.handlers.at("api-only");
  ASSERT_EQ(api.steps.size(), 5u);
  EXPECT_EQ(api.steps[0].kind, StepKind::kDenyHosts);
  EXPECT_EQ(api.steps[0].status, 451);
  EXPECT_EQ(api.steps[1].entries.size(), 2u);
  EXPECT_EQ(api.steps[1].entries[1].text(), "HEAD");
  EXPECT_EQ(api.steps[2].status, 404);
  EXPECT_EQ(api.steps[3].kind, StepKind::kSetQuery);
  EXPECT_EQ(api.steps[3].name, "per_page");
  EXPECT_EQ(api.steps[4].kind, StepKind::kBasicAuth);
  EXPECT_EQ(api.steps[4].value.text(), "bot-{{instance}}");
  EXPECT_EQ(api.steps[4].password.text(), "{{secret:pw}}");

  EXPECT_EQ(p.handlers.at("no-http").steps[0].body, "network locked after setup");
  EXPECT_EQ(p.handlers.at("closed").steps[0].kind, StepKind::kDeny);
  EXPECT_EQ(p.handlers.at("closed").steps[0].body, "");
  EXPECT_EQ(p.handlers.at("closed-too").steps.size(), 1u);

  std::vector<HostBinding> want = {
      {"api.github.com", {"github-auth", {}}},
      {"*.example.com", {"api-only", {}}},
      {"npm.internal", {"allow-hosts", {{"hostnames", std::vector<std::string>{"npm.internal"}}}}}};
  EXPECT_EQ(p.by_host, want);
  ASSERT_TRUE(p.catch_all);
  EXPECT_EQ(*p.catch_all,
            (HandlerBinding{"allow-hosts", {{"hostnames", std::string("github.com")}}}));
  EXPECT_TRUE(p.allow_plaintext_credentials);
}

TEST(LoadHandlers, WithoutHandlerKeysNothingChanges) {
  Policy p = MustParse("name: a\n");
  EXPECT_TRUE(p.handlers.empty());
  EXPECT_TRUE(p.by_host.empty());
  EXPECT_FALSE(p.catch_all);
  EXPECT_FALSE(p.allow_plaintext_credentials);
}

// --- errors, each at its line and column ---------------------------------------

TEST(LoadHandlersErrors, UnknownStep) {
  EXPECT_EQ(Errors("name: a\nhandlers:\n  h:\n    - set_headers: {name: A, value: b}\n"),
            std::vector<std::string>{
                "4:7: handler \"h\" step 1: unknown step the string \"set_headers\"; did you mean "
                "\"set_header\"?"});
  ExpectOneError("name: a\nhandlers:\n  h:\n    - frobnicate: x\n", 4, 7,
                 "unknown step the string \"frobnicate\"; known steps: allow_hosts, deny_hosts, "
                 "allow_methods, allow_paths, set_header, remove_header, set_query, basic_auth, "
                 "deny");
}

TEST(LoadHandlersErrors, StepShape) {
  ExpectOneError("name: a\nhandlers:\n  h:\n    - deny\n", 4, 7,
                 "handler \"h\" step 1: a step is a mapping of one step name to its settings, "
                 "such as \"deny: {}\", not the string \"deny\" (write \"deny: ...\")");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - {deny: {}, allow_hosts: [a.com]}\n", 4, 7,
                 "(it has 2 keys: write each step as its own list item, \"- \")");
  ExpectOneError("name: a\nhandlers:\n  h: {deny: {}}\n", 3, 6,
                 "handler \"h\" must be a list of steps, not a mapping");
  ExpectOneError("name: a\nhandlers:\n  h: []\n", 3, 6,
                 "handler \"h\" has no steps (a handler that refuses every request is [deny: {}])");
  ExpectOneError("name: a\nhandlers: [h]\n", 2, 11,
                 "handlers must be a mapping of handler names to lists of steps, not a list");
}

TEST(LoadHandlersErrors, HandlerNames) {
  ExpectOneError(
      "name: a\nhandlers:\n  \"bad name\":\n    - deny: {}\n", 3, 3,
      "handler name the string \"bad name\": use 1-64 letters, digits, '-', '_' and '.'");
  ExpectOneError("name: a\nhandlers:\n  " + std::string(65, 'h') + ":\n    - deny: {}\n", 3, 3,
                 "use 1-64 letters");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - deny: {}\n  h:\n    - deny: {}\n", 5, 3,
                 "handlers: duplicate handler \"h\"");
}

TEST(LoadHandlersErrors, BadStatus) {
  for (const char* status : {"399", "600", "200", "\"403\"", "4o3", "403.0", "[403]"}) {
    std::string yaml =
        "name: a\nhandlers:\n  h:\n    - deny: {status: " + std::string(status) + "}\n";
    ExpectOneError(yaml, 4, 22,
                   "handler \"h\" step 1 (deny): status must be a refusal status, 400 to 599");
  }
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_methods: {methods: [GET], status: 302}\n",
                 4, 47, "handler \"h\" step 1 (allow_methods): status must be a refusal status");
}

TEST(LoadHandlersErrors, HeaderNames) {
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_header: {name: \"X Y\", value: b}\n", 4, 26,
                 "handler \"h\" step 1 (set_header): header name \"X Y\" is not a token (RFC "
                 "9110: letters, digits and !#$%&'*+-.^_`|~)");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - remove_header: \"a:b\"\n", 4, 22,
                 "is not a token");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_header: {name: \"\", value: b}\n", 4, 26,
                 "a header name must be a non-empty string");
  for (const char* managed : {"Host", "content-length", "Transfer-Encoding", "CONNECTION",
                              "Upgrade", "TE", "Trailer", "Proxy-Authorization", "Keep-Alive"}) {
    ExpectOneError("name: a\nhandlers:\n  h:\n    - remove_header: " + std::string(managed) + "\n",
                   4, 22,
                   "header \"" + std::string(managed) +
                       "\" is managed by egressd (framing, routing, hop-by-hop); a handler "
                       "cannot set or remove it");
  }
  ExpectOneError(
      "name: a\nhandlers:\n  h:\n    - set_header: {name: \"X-{{secret:t}}\", value: b}\n", 4, 26,
      "header name \"X-{{secret:t}}\" holds a placeholder; only values are templates");
}

TEST(LoadHandlersErrors, StepSettings) {
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_header: {name: A}\n", 4, 19,
                 "handler \"h\" step 1 (set_header): missing \"value\"");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_header: {value: A}\n", 4, 19,
                 "missing \"name\"");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_header: {name: A, valeu: b}\n", 4, 29,
                 "handler \"h\" step 1 (set_header): unknown key the string \"valeu\"; did you "
                 "mean \"value\"?");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_header: [A, b]\n", 4, 19,
                 "handler \"h\" step 1 (set_header) must be a mapping {name: NAME, value: VALUE}, "
                 "not a list");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_query: {name: \"a&b\", value: c}\n", 4, 25,
                 "query parameter name the string \"a&b\": use letters, digits");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - basic_auth: {user: \"a:b\", password: c}\n", 4,
                 26, "a basic_auth user cannot contain ':'");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - basic_auth: {user: a}\n", 4, 19,
                 "missing \"password\"");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - deny: {body: [x]}\n", 4, 20,
                 "body must be a string, not a list");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - deny: {statsu: 403}\n", 4, 14,
                 "did you mean \"status\"?");
}

TEST(LoadHandlersErrors, Templates) {
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_header: {name: A, value: \"{{secret:x\"}\n",
                 4, 36,
                 "handler \"h\" step 1 (set_header): value: unclosed \"{{\" at column 1 (a "
                 "placeholder ends with \"}}\")");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - set_query: {name: a, value: \"{{env.HOME}}\"}\n",
                 4, 35, "value: unknown placeholder \"{{env.HOME}}\" at column 1");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_paths: [\"/{{nope}}\"]\n", 4, 21,
                 "handler \"h\" step 1 (allow_paths): unknown placeholder");
}

TEST(LoadHandlersErrors, SecretsOnlyInRequestValues) {
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_hosts: [\"{{secret:x}}.com\"]\n", 4, 21,
                 "handler \"h\" step 1 (allow_hosts): {{secret:...}} belongs in set_header, "
                 "set_query and basic_auth values; a list entry never carries a secret");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - deny_hosts: {hosts: [\"{{secret:x}}\"]}\n", 4, 28,
                 "a list entry never carries a secret");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - deny: {body: \"token {{secret:x}}\"}\n", 4, 20,
                 "handler \"h\" step 1 (deny): a deny body goes to the sandbox; it never carries "
                 "a secret");
}

TEST(LoadHandlersErrors, ListEntries) {
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_hosts: [\"a..com\"]\n", 4, 21,
                 "handler \"h\" step 1 (allow_hosts): ");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_methods: [\"GET POST\"]\n", 4, 23,
                 "\"GET POST\" is no HTTP method (a token such as GET)");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_paths: [\"repos/*\"]\n", 4, 21,
                 "a path glob starts with '/' or '*', not \"repos/*\"");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_hosts: []\n", 4, 20,
                 "handler \"h\" step 1 (allow_hosts) is empty, which refuses every request; write "
                 "\"deny: {}\" for that");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_hosts: a.com\n", 4, 20,
                 "handler \"h\" step 1 (allow_hosts) must be a list, one \"{{params.NAME}}\", or "
                 "{hosts: [...], status: 4xx}, not the string \"a.com\" (write [\"a.com\"] for a "
                 "list of one)");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_hosts: {status: 404}\n", 4, 20,
                 "missing \"hosts\"");
  ExpectOneError("name: a\nhandlers:\n  h:\n    - allow_methods: [GET, 7]\n", 4, 28,
                 "entry 7 is a number, not a string");
  std::string many = "name: a\nhandlers:\n  h:\n    - allow_methods: [";
  for (size_t i = 0; i <= kMaxListEntries; ++i) many += "GET,";
  many.back() = ']';
  ExpectOneError(many + "\n", 4, 22, "4097 entries, more than the limit of 4096");
}

TEST(LoadBindingsErrors, UnknownHandler) {
  EXPECT_EQ(Errors("name: a\nhandlers:\n  github-auth:\n    - deny: {}\nby_host:\n  "
                   "api.github.com: gihub-auth\ncatch_all: nope\n"),
            (std::vector<std::string>{
                "6:19: by_host \"api.github.com\": handler \"gihub-auth\" is not defined; did you "
                "mean \"github-auth\"?",
                "7:12: catch_all: handler \"nope\" is not defined; known handlers: github-auth"}));
  ExpectOneError("name: a\ncatch_all: {handler: x}\n", 2, 12,
                 "catch_all: handler \"x\" is not defined; the policy defines no handlers");
}

TEST(LoadBindingsErrors, ErrorsAfterTheWalkComeInDocumentOrder) {
  EXPECT_EQ(Errors("name: a\ncatch_all: nope\nhandlers:\n  h:\n    - deny: {status: 1}\n"),
            (std::vector<std::string>{
                "2:12: catch_all: handler \"nope\" is not defined; known handlers: h",
                "5:22: handler \"h\" step 1 (deny): status must be a refusal status, 400 to 599, "
                "not a number \"1\""}));
}

TEST(LoadBindingsErrors, ParamsChecked) {
  const std::string handlers =
      "name: a\nhandlers:\n  allow-hosts:\n    - allow_hosts: \"{{params.hostnames}}\"\n"
      "  org:\n    - set_header: {name: X-Org, value: \"{{params.org}}\"}\n";
  ExpectOneError(handlers + "catch_all: allow-hosts\n", 7, 12,
                 "catch_all: handler \"allow-hosts\" uses {{params.hostnames}} in allow_hosts "
                 "(step 1), which the binding does not give");
  ExpectOneError(handlers + "by_host:\n  a.com: {handler: org, params: {org: [a, b]}}\n", 8, 10,
                 "by_host \"a.com\": parameter \"org\" is a list, but handler \"org\" uses it in "
                 "set_header (step 1) where only a string fits");
  ExpectOneError(handlers + "by_host:\n  a.com: {handler: org, params: {org: a, orgg: b}}\n", 8, 10,
                 "parameter \"orgg\" is not used by handler \"org\" (a typo?)");
  ExpectOneError(handlers + "catch_all: {handler: allow-hosts, params: {hostnames: [\"a..b\"]}}\n",
                 7, 12, "catch_all: parameter \"hostnames\": allow_hosts: ");
  ExpectOneError(handlers + "catch_all: {handler: org, params: {org: 42}}\n", 7, 41,
                 "catch_all params.org is a number, not a string (quote it if you mean it)");
  ExpectOneError(handlers + "catch_all: {handler: org, params: [org]}\n", 7, 35,
                 "catch_all: params must be a mapping of names to strings or lists of strings");
  ExpectOneError(handlers + "catch_all: {params: {org: a}}\n", 7, 12,
                 "catch_all: missing \"handler\"");
  ExpectOneError(handlers + "catch_all: {handler: org, prams: {org: a}}\n", 7, 27,
                 "catch_all: unknown key the string \"prams\"; did you mean \"params\"?");
  ExpectOneError(handlers + "catch_all: [org]\n", 7, 12,
                 "catch_all: a binding is a handler name or {handler: NAME, params: {...}}, not "
                 "a list");
}

TEST(LoadBindingsErrors, ByHostKeys) {
  const std::string handlers = "name: a\nhandlers:\n  h:\n    - deny: {}\n";
  ExpectOneError(handlers + "by_host:\n  a.com: h\n  A.com.: h\n", 7, 3,
                 "by_host: duplicate entry \"A.com.\" (same as \"a.com\")");
  ExpectOneError(handlers + "by_host:\n  \"a..com\": h\n", 6, 3, "by_host: ");
  ExpectOneError(handlers + "by_host: [a.com]\n", 5, 10,
                 "by_host must be a mapping of host globs to handlers, not a list");
}

TEST(LoadBindingsErrors, CredentialUnderCatchAll) {
  ExpectOneError(
      "name: a\nhandlers:\n  gh:\n    - set_header: {name: Authorization, value: "
      "\"Bearer {{secret:t}}\"}\ncatch_all: gh\n",
      5, 12,
      "catch_all: handler \"gh\" adds a credential ({{secret:...}}), and a catch_all "
      "would send it to every host; bind it by host in by_host");
}

TEST(LoadHandlersErrors, AllowPlaintextCredentialsIsABoolean) {
  ExpectOneError("name: a\nallow_plaintext_credentials: yes\n", 2, 30,
                 "allow_plaintext_credentials must be true or false, not the string \"yes\"");
}

}  // namespace
}  // namespace egressd::policy
