#include "policy/policy_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "loader_test_helpers.h"
#include "policy/compiled_policy.h"

namespace egressd::policy {
namespace {

TEST(ParsePolicy, FullExample) {
  Policy p = MustParse(R"(name: agent
allowed_hosts: ["github.com", "*.GitHub.com.", "registry.npmjs.org"]
denied_hosts: ["gist.github.com"]
deny_cidrs: ["169.254.0.0/16", "10.0.0.0/8", "fd00::/8"]
allow_tcp: ["db.internal:5432", "192.0.2.0/24:22", "[::1]:5432", "[fd00::/8]:443"]
mode: enforce
)");
  EXPECT_EQ(p.name, "agent");
  EXPECT_EQ(p.allowed_hosts,
            (std::vector<std::string>{"github.com", "*.github.com", "registry.npmjs.org"}));
  EXPECT_EQ(p.denied_hosts, std::vector<std::string>{"gist.github.com"});
  ASSERT_EQ(p.deny_cidrs.size(), 3u);
  EXPECT_EQ(p.deny_cidrs[0].ToString(), "169.254.0.0/16");
  EXPECT_EQ(p.deny_cidrs[2].ToString(), "fd00::/8");
  ASSERT_EQ(p.allow_tcp.size(), 4u);
  EXPECT_EQ(p.allow_tcp[0].text, "db.internal:5432");
  EXPECT_EQ(p.allow_tcp[0].host, "db.internal");
  EXPECT_FALSE(p.allow_tcp[0].cidr);
  EXPECT_EQ(p.allow_tcp[0].port, 5432);
  EXPECT_EQ(p.allow_tcp[1].cidr->ToString(), "192.0.2.0/24");
  EXPECT_EQ(p.allow_tcp[1].port, 22);
  EXPECT_FALSE(p.allow_tcp[1].host);
  EXPECT_EQ(p.allow_tcp[2].cidr->ToString(), "::1/128");
  EXPECT_EQ(p.allow_tcp[3].cidr->ToString(), "fd00::/8");
  EXPECT_EQ(p.allow_tcp[3].port, 443);
}

TEST(ParsePolicy, NameOnlyIsAValidPolicy) {
  Policy p = MustParse("name: open\n");
  EXPECT_EQ(p.name, "open");
  EXPECT_TRUE(p.allowed_hosts.empty());
  EXPECT_TRUE(p.denied_hosts.empty());
  EXPECT_TRUE(p.deny_cidrs.empty());
  EXPECT_TRUE(p.allow_tcp.empty());
}

TEST(ParsePolicy, BlockListsAndCommentsAndQuotes) {
  Policy p = MustParse(R"(# a comment
name: "agent-1.v2_x"
denied_hosts:
  - gist.github.com   # trailing comment
  - 'raw.githubusercontent.com'
deny_cidrs:
  - 10.0.0.0/8
  - "5.6.7.8"
)");
  EXPECT_EQ(p.name, "agent-1.v2_x");
  EXPECT_EQ(p.denied_hosts,
            (std::vector<std::string>{"gist.github.com", "raw.githubusercontent.com"}));
  ASSERT_EQ(p.deny_cidrs.size(), 2u);
  EXPECT_EQ(p.deny_cidrs[1].ToString(), "5.6.7.8/32");
}

TEST(ParsePolicy, EmptyListsOtherThanAllowedHostsAreFine) {
  Policy p = MustParse("name: a\ndenied_hosts: []\ndeny_cidrs: []\nallow_tcp: []\n");
  EXPECT_TRUE(p.denied_hosts.empty());
}

TEST(ParsePolicy, QuotedOrTaggedDigitsAreStrings) {
  Policy p = MustParse("name: a\ndenied_hosts: ['5', !!str 6]\n");
  EXPECT_EQ(p.denied_hosts, (std::vector<std::string>{"5", "6"}));
}

// --- whole-file errors -----------------------------------------------------

TEST(ParsePolicyErrors, EmptyDocument) {
  EXPECT_EQ(Errors(""),
            std::vector<std::string>{"0:0: empty policy file: it needs at least \"name:\""});
  EXPECT_EQ(Errors("# only a comment\n\n").size(), 1u);
  EXPECT_EQ(Errors("---\n").at(0), "0:0: empty policy file: it needs at least \"name:\"");
}

TEST(ParsePolicyErrors, SyntaxErrorHasItsLine) {
  ExpectOneError("name: a\nallowed_hosts: [\"x.com\"\n", 3, 1,
                 "YAML syntax: end of sequence flow not found");
  ExpectOneError("name: a\n  bad: indent\n", 2, 6, "YAML syntax: illegal map value");
  ExpectOneError("name: a\ndenied_hosts: *nowhere\n", 2, 15,
                 "YAML syntax: the referenced anchor is not defined");
}

TEST(ParsePolicyErrors, TopLevelNotAMap) {
  EXPECT_EQ(
      Errors("- name: a\n"),
      std::vector<std::string>{
          "1:1: the policy must be a mapping of keys (name, allowed_hosts, ...), not a list"});
  ExpectOneError("\n\njust a string\n", 3, 1, "not the string \"just a string\"");
}

TEST(ParsePolicyErrors, MoreThanOneDocument) {
  // Reported where the second document starts: its "---".
  EXPECT_EQ(Errors("name: a\n---\nname: b\n"),
            std::vector<std::string>{"2:1: a second YAML document (\"---\"): one policy per file"});
  // An empty second document is still a second document.
  ExpectOneError("name: a\n---\n", 2, 1, "one policy per file");
  // Errors in the first document are reported too.
  EXPECT_EQ(Errors("name: a\nmode: bogus\n---\nname: b\n").size(), 2u);
}

TEST(ParsePolicyErrors, MissingName) {
  ExpectOneError("denied_hosts: [\"x.com\"]\n", 1, 1, "missing required key \"name\"");
}

TEST(ParsePolicyErrors, TooLargeText) {
  std::string big = "name: a\n# " + std::string(kMaxPolicyFileBytes, 'x') + "\n";
  ExpectOneError(big, 0, 0, "larger than");
}

TEST(ParsePolicyErrors, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "name: a\nallow_tcp: " + std::string(100000, '[');
  auto errors = Errors(deep);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("YAML"), std::string::npos) << errors[0];
}

// --- keys ------------------------------------------------------------------

TEST(ParsePolicyErrors, UnknownKeySuggestsTheCloseOne) {
  EXPECT_EQ(Errors("name: a\nallowed_host: [\"x.com\"]\n"),
            std::vector<std::string>{
                "2:1: unknown key \"allowed_host\"; did you mean \"allowed_hosts\"?"});
  ExpectOneError("name: a\n\ndenyed_hosts: []\n", 3, 1, "did you mean \"denied_hosts\"?");
  ExpectOneError("name: a\ndeny_cidr: []\n", 2, 1, "did you mean \"deny_cidrs\"?");
  ExpectOneError("nmae: a\nname: b\n", 1, 1, "did you mean \"name\"?");
}

TEST(ParsePolicyErrors, UnknownKeyFarFromAllListsKnownKeys) {
  EXPECT_EQ(Errors("name: a\nfrobnicate: {}\n"),
            std::vector<std::string>{"2:1: unknown key \"frobnicate\"; known keys: name, mode, "
                                     "allowed_hosts, denied_hosts, deny_cidrs, allow_tcp, "
                                     "allow_get_body, allow_unnamed, tls, handlers, by_host, "
                                     "catch_all, allow_plaintext_credentials, deny_response"});
}

TEST(ParsePolicyErrors, KeysAreCaseSensitive) {
  ExpectOneError("name: a\nAllowed_Hosts: [\"x.com\"]\n", 2, 1, "unknown key \"Allowed_Hosts\"");
}

TEST(ParsePolicyErrors, NonScalarKey) {
  ExpectOneError("name: a\n? [x]\n: y\n", 2, 3, "a key must be a plain name, not a list");
}

TEST(ParsePolicyErrors, DuplicateKey) {
  EXPECT_EQ(Errors("name: a\ndenied_hosts: [\"x.com\"]\nname: b\ndenied_hosts: []\n"),
            (std::vector<std::string>{"3:1: duplicate key \"name\"",
                                      "4:1: duplicate key \"denied_hosts\""}));
}

// --- name and mode -----------------------------------------------------------

TEST(ParsePolicyErrors, BadName) {
  ExpectOneError("name: \"has space\"\n", 1, 7, "name \"has space\": use 1-64 letters");
  ExpectOneError("name: a/b\n", 1, 7, "use 1-64 letters");
  ExpectOneError("name: " + std::string(65, 'n') + "\n", 1, 7, "use 1-64 letters");
  ExpectOneError("name: ''\n", 1, 7, "name must be a non-empty string");
  ExpectOneError("name: [a]\n", 1, 7, "name must be a non-empty string, not a list");
  // An empty value is reported at its key: the mark of nothing points past the line.
  ExpectOneError("deny_cidrs: []\nname:\n", 2, 1, "name must be a non-empty string, not nothing");
}

TEST(ParsePolicy, NameOf64IsFine) {
  EXPECT_EQ(MustParse("name: " + std::string(64, 'n') + "\n").name, std::string(64, 'n'));
}

TEST(ParsePolicy, Modes) {
  EXPECT_EQ(MustParse("name: a\n").mode, PolicyMode::kEnforce);
  EXPECT_EQ(MustParse("name: a\nmode: enforce\n").mode, PolicyMode::kEnforce);
  EXPECT_EQ(MustParse("name: a\nmode: audit\n").mode, PolicyMode::kAudit);
}

TEST(ParsePolicyErrors, BadMode) {
  ExpectOneError("name: a\nmode: permissive\n", 2, 7,
                 "mode must be \"enforce\" or \"audit\", not the string \"permissive\"");
  ExpectOneError("name: a\nmode: [enforce]\n", 2, 7, "not a list");
  ExpectOneError("name: a\nmode:\n", 2, 1, "mode must be \"enforce\" or \"audit\"");
  ExpectOneError("name: a\nmode: Audit\n", 2, 7, "mode must be");
}

TEST(ParsePolicy, AllowGetBodyIsAHostList) {
  Policy p = MustParse("name: a\nallow_get_body: [\"Search.Example.com.\", \"*.es.internal\"]\n");
  EXPECT_EQ(p.allow_get_body, (std::vector<std::string>{"search.example.com", "*.es.internal"}));
  EXPECT_TRUE(MustParse("name: a\n").allow_get_body.empty());
  EXPECT_TRUE(MustParse("name: a\nallow_get_body: []\n").allow_get_body.empty());
}

TEST(ParsePolicyErrors, BadAllowGetBody) {
  ExpectOneError("name: a\nallow_get_body: example.com\n", 2, 17,
                 "allow_get_body must be a list of strings");
  ExpectOneError("name: a\nallow_get_body: [\"a b\"]\n", 2, 18, "allow_get_body: ");
  ExpectOneError("name: a\nallow_get_body: [\"x.com\", \"X.com\"]\n", 2, 27,
                 "allow_get_body: duplicate entry");
}

TEST(ParsePolicy, AllowUnnamed) {
  EXPECT_FALSE(MustParse("name: a\n").allow_unnamed);
  EXPECT_TRUE(MustParse("name: a\ndenied_hosts: [\"x.com\"]\nallow_unnamed: true\n").allow_unnamed);
  EXPECT_FALSE(MustParse("name: a\nallow_unnamed: false\n").allow_unnamed);
  // false says what deny by default does anyway.
  EXPECT_FALSE(
      MustParse("name: a\nallowed_hosts: [\"x.com\"]\nallow_unnamed: false\n").allow_unnamed);
}

TEST(ParsePolicyErrors, CrossKeyErrorsKeepDocumentOrder) {
  EXPECT_EQ(Errors("name: a\nallowed_hosts: [\"x.com\"]\nallow_unnamed: true\n"
                   "allow_get_body: [\"b c\"]\n"),
            (std::vector<std::string>{
                "3:16: allow_unnamed has no effect with allowed_hosts (deny by default refuses "
                "what names no host); list the address in allow_tcp instead, or leave "
                "allow_unnamed out",
                "4:18: allow_get_body: \"b c\": contains whitespace"}));
}

TEST(ParsePolicyErrors, BadAllowUnnamed) {
  ExpectOneError("name: a\nallow_unnamed: yes\n", 2, 16,
                 "allow_unnamed must be true or false, not the string \"yes\"");
  ExpectOneError("name: a\nallow_unnamed: \"true\"\n", 2, 16, "must be true or false");
  ExpectOneError("name: a\nallow_unnamed: [true]\n", 2, 16, "not a list");
  ExpectOneError("name: a\nallow_unnamed:\n", 2, 1, "must be true or false");
  // Under deny by default it would do nothing: say so rather than ignore it.
  ExpectOneError("name: a\nallow_unnamed: true\nallowed_hosts: [\"x.com\"]\n", 2, 16,
                 "allow_unnamed has no effect with allowed_hosts");
}

// --- list shapes -------------------------------------------------------------

TEST(ParsePolicyErrors, StringWhereAListIsExpected) {
  EXPECT_EQ(
      Errors("name: a\nallowed_hosts: github.com\n"),
      std::vector<std::string>{"2:16: allowed_hosts must be a list of strings, not the string "
                               "\"github.com\" (write [\"github.com\"] for a list of one)"});
  ExpectOneError("name: a\ndeny_cidrs: {a: b}\n", 2, 13,
                 "deny_cidrs must be a list of strings, not a mapping");
  ExpectOneError("name: a\nallow_tcp:\n", 2, 1, "allow_tcp must be a list of strings, not nothing");
}

TEST(ParsePolicyErrors, NumberOrBooleanInAList) {
  EXPECT_EQ(
      Errors("name: a\ndenied_hosts: [\"x.com\", 5, 1.5, true, 0x1F, 1e3]\n"),
      (std::vector<std::string>{
          "2:25: denied_hosts: entry 5 is a number, not a string (quote it if you mean it)",
          "2:28: denied_hosts: entry 1.5 is a number, not a string (quote it if you mean it)",
          "2:33: denied_hosts: entry true is a boolean, not a string (quote it if you mean it)",
          "2:39: denied_hosts: entry 0x1F is a number, not a string (quote it if you mean it)",
          "2:45: denied_hosts: entry 1e3 is a number, not a string (quote it if you mean it)"}));
  ExpectOneError("name: a\nallow_tcp:\n  - 22\n", 3, 5, "allow_tcp: entry 22 is a number");
}

TEST(ParsePolicyErrors, NonScalarEntry) {
  ExpectOneError("name: a\ndenied_hosts:\n  - x.com\n  - [y.com]\n", 4, 5,
                 "denied_hosts: each entry must be a string, not a list");
  ExpectOneError("name: a\ndenied_hosts:\n  - {host: y.com}\n", 3, 5, "not a mapping");
  ExpectOneError("name: a\ndenied_hosts: [~]\n", 2, 16, "not nothing (null)");
}

TEST(ParsePolicyErrors, EmptyAllowedHostsIsRefused) {
  EXPECT_EQ(Errors("name: a\nallowed_hosts: []\n"),
            std::vector<std::string>{
                "2:16: allowed_hosts is empty, which would allow every host; list the hosts to "
                "allow, or leave the key out to allow all (denied_hosts: [\"*\"] denies all)"});
  ExpectOneError("name: a\nallowed_hosts:\n", 2, 1, "must be a list of strings, not nothing");
}

TEST(ParsePolicyErrors, TooManyEntries) {
  std::string list;
  for (size_t i = 0; i <= kMaxListEntries; ++i)
    list += (i ? ", \"h" : "\"h") + std::to_string(i) + ".com\"";
  ExpectOneError("name: a\ndenied_hosts: [" + list + "]\n", 2, 15,
                 "denied_hosts: 4097 entries, more than the limit of 4096");
}

TEST(ParsePolicy, ExactlyMaxEntriesIsFine) {
  std::string list;
  for (size_t i = 0; i < kMaxListEntries; ++i)
    list += (i ? ", \"h" : "\"h") + std::to_string(i) + ".com\"";
  EXPECT_EQ(MustParse("name: a\ndenied_hosts: [" + list + "]\n").denied_hosts.size(),
            kMaxListEntries);
}

// --- entries -------------------------------------------------------------------

TEST(ParsePolicyErrors, BadHostGlobs) {
  EXPECT_EQ(
      Errors(R"(name: a
allowed_hosts:
  - "**.github.com"
  - ".npmjs.org"
  - "ok.com"
  - "bad host.com"
denied_hosts: ["https://evil.com", ""]
)"),
      (std::vector<std::string>{
          "3:5: allowed_hosts: \"**.github.com\": \"**\" in a pattern; a single '*' already "
          "matches across dots",
          "4:5: allowed_hosts: \".npmjs.org\": starts with '.'; did you mean \"*.npmjs.org\"?",
          "6:5: allowed_hosts: \"bad host.com\": contains whitespace",
          "7:16: denied_hosts: \"https://evil.com\": a URL; write the host name only, as in "
          "\"example.com\"",
          "7:36: denied_hosts: empty host"}));
}

TEST(ParsePolicyErrors, HostLongerThan253) {
  std::string label(63, 'a');
  std::string host = label + "." + label + "." + label + "." + label;  // 255
  ExpectOneError("name: a\ndenied_hosts: [\"" + host + "\"]\n", 2, 16,
                 "host longer than 253 characters");
}

TEST(ParsePolicyErrors, DuplicateHostsAfterNormalization) {
  EXPECT_EQ(Errors("name: a\nallowed_hosts: [\"x.com\", \"X.com.\", \"*.x.com\", \"*.x.com\"]\n"),
            (std::vector<std::string>{
                "2:26: allowed_hosts: duplicate entry \"X.com.\" (same as \"x.com\")",
                "2:47: allowed_hosts: duplicate entry \"*.x.com\""}));
}

TEST(ParsePolicy, SameHostInAllowedAndDeniedIsNotADuplicate) {
  Policy p = MustParse("name: a\nallowed_hosts: [\"x.com\"]\ndenied_hosts: [\"x.com\"]\n");
  EXPECT_EQ(p.allowed_hosts.size(), 1u);
  EXPECT_EQ(p.denied_hosts.size(), 1u);
}

TEST(ParsePolicyErrors, BadCidrs) {
  EXPECT_EQ(
      Errors(R"(name: a
deny_cidrs:
  - 10.1.0.0/8
  - 10.0.0.0/33
  - example.com
  - 10.0.0.0/8
  - ::ffff:10.0.0.0/104
)"),
      (std::vector<std::string>{
          "3:5: deny_cidrs: \"10.1.0.0/8\" has host bits set; did you mean 10.0.0.0/8?",
          "4:5: deny_cidrs: \"10.0.0.0/33\": prefix length must be 0..32",
          "5:5: deny_cidrs: \"example.com\" is not an IP address or CIDR",
          "7:5: deny_cidrs: duplicate entry \"::ffff:10.0.0.0/104\" (same as \"10.0.0.0/8\")"}));
}

TEST(ParsePolicyErrors, BadAllowTcp) {
  EXPECT_EQ(
      Errors(R"(name: a
allow_tcp:
  - db.internal
  - db.internal:0
  - db.internal:65536
  - db.internal:http
  - "*.internal:22"
  - "::1:22"
  - "[::1]"
  - "[1.2.3.4]:22"
  - ":22"
  - "10.0.0.1/8:22"
  - "[::1:22"
  - "bad host:22"
)"),
      (std::vector<std::string>{
          "3:5: allow_tcp: \"db.internal\": missing :PORT (as in \"db.internal:5432\")",
          "4:5: allow_tcp: \"db.internal:0\": port must be a number 1..65535",
          "5:5: allow_tcp: \"db.internal:65536\": port must be a number 1..65535",
          "6:5: allow_tcp: \"db.internal:http\": port must be a number 1..65535",
          "7:5: allow_tcp: \"*.internal:22\": allow_tcp takes exact host names, not patterns",
          "8:5: allow_tcp: \"::1:22\": write an IPv6 address in brackets, as in \"[::1]:5432\"",
          "9:5: allow_tcp: \"[::1]\": missing :PORT after ']' (as in \"[::1]:5432\")",
          "10:5: allow_tcp: \"[1.2.3.4]:22\": brackets are for IPv6 addresses only",
          "11:5: allow_tcp: \":22\": missing host or address before the port",
          "12:5: allow_tcp: \"10.0.0.1/8:22\": \"10.0.0.1/8\" has host bits set; did you mean "
          "10.0.0.0/8?",
          "13:5: allow_tcp: \"[::1:22\": missing ']'",
          "14:5: allow_tcp: \"bad host:22\": \"bad host\": contains whitespace"}));
}

TEST(ParsePolicyErrors, DuplicateAllowTcp) {
  EXPECT_EQ(Errors("name: a\nallow_tcp: [\"DB.internal:22\", \"db.internal.:22\", \"[::1]:5432\", "
                   "\"[0::1]:5432\", \"db.internal:23\"]\n"),
            (std::vector<std::string>{
                "2:31: allow_tcp: duplicate entry \"db.internal.:22\" (same as \"DB.internal:22\")",
                "2:64: allow_tcp: duplicate entry \"[0::1]:5432\" (same as \"[::1]:5432\")"}));
}

TEST(ParsePolicyErrors, EveryErrorInTheFileIsReported) {
  auto errors = Errors(R"(nam: agent
allowed_hosts: ["**.x.com", 7]
denied_hosts: gist.github.com
deny_cidrs: ["10.0.0.1/8"]
allow_tcp: ["db:0"]
mode: learn
)");
  EXPECT_EQ(errors,
            (std::vector<std::string>{
                "1:1: unknown key \"nam\"; did you mean \"name\"?",
                "2:17: allowed_hosts: \"**.x.com\": \"**\" in a pattern; a single '*' "
                "already matches across dots",
                "2:29: allowed_hosts: entry 7 is a number, not a string (quote it if you "
                "mean it)",
                "3:15: denied_hosts must be a list of strings, not the string "
                "\"gist.github.com\" (write [\"gist.github.com\"] for a list of one)",
                "4:14: deny_cidrs: \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?",
                "5:13: allow_tcp: \"db:0\": port must be a number 1..65535",
                "6:7: mode must be \"enforce\" or \"audit\", not the string \"learn\"",
                "1:1: missing required key \"name\""}));
}

// --- ParseTcpRule ----------------------------------------------------------------

TEST(ParseTcpRule, Forms) {
  std::string err;
  auto host = ParseTcpRule("DB.Internal.:5432", &err);
  ASSERT_TRUE(host) << err;
  EXPECT_EQ(host->host, "db.internal");
  EXPECT_EQ(host->text, "DB.Internal.:5432");
  EXPECT_EQ(host->port, 5432);
  auto v4 = ParseTcpRule("1.2.3.4:22", &err);
  ASSERT_TRUE(v4) << err;
  EXPECT_EQ(v4->cidr->ToString(), "1.2.3.4/32");
  auto v6 = ParseTcpRule("[fd00::/8]:65535", &err);
  ASSERT_TRUE(v6) << err;
  EXPECT_EQ(v6->cidr->ToString(), "fd00::/8");
  EXPECT_EQ(v6->port, 65535);
  auto low = ParseTcpRule("x:1", &err);
  ASSERT_TRUE(low) << err;
  EXPECT_EQ(low->port, 1);
  EXPECT_FALSE(ParseTcpRule("x:-1", &err));
  EXPECT_FALSE(ParseTcpRule("x:+1", &err));
  EXPECT_FALSE(ParseTcpRule("x:22 ", &err));
  EXPECT_FALSE(ParseTcpRule("x:99999999999999999999", &err));
  EXPECT_FALSE(ParseTcpRule("", &err));
  EXPECT_FALSE(ParseTcpRule("[]:22", &err));
}

// --- files and formatting ------------------------------------------------------------

class LoadPolicyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/policy_loader_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(LoadPolicyFileTest, LoadsAFile) {
  LoadResult r = LoadPolicyFile(Write("agent.yaml", "name: agent\ndenied_hosts: [\"x.com\"]\n"));
  ASSERT_TRUE(r.ok()) << FormatErrors(r.errors, "agent.yaml");
  EXPECT_EQ(r.policy->name, "agent");
}

TEST_F(LoadPolicyFileTest, ReportsErrorsOfAFile) {
  LoadResult r = LoadPolicyFile(Write("bad.yaml", "name: agent\nmode: learn\n"));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
}

TEST_F(LoadPolicyFileTest, MissingFile) {
  std::string path = dir_ + "/nope.yaml";
  LoadResult r = LoadPolicyFile(path);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.policy);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].column, 0);
  EXPECT_EQ(r.errors[0].message, "cannot read " + path + ": No such file or directory");
}

TEST_F(LoadPolicyFileTest, Directory) {
  LoadResult r = LoadPolicyFile(dir_);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "cannot read " + dir_ + ": Is a directory");
}

TEST_F(LoadPolicyFileTest, TooLarge) {
  LoadResult r = LoadPolicyFile(Write("big.yaml", std::string(kMaxPolicyFileBytes + 1, '#')));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("larger than"), std::string::npos);
  EXPECT_FALSE(r.policy);
}

TEST(FormatErrors, OneLinePerError) {
  std::vector<LoadError> errors = {{3, 5, "bad thing"}, {7, 0, "no column"}, {0, 0, "whole file"}};
  EXPECT_EQ(FormatErrors(errors, "agent.yaml"),
            "agent.yaml:3:5: error: bad thing\n"
            "agent.yaml:7: error: no column\n"
            "agent.yaml: error: whole file\n");
  EXPECT_EQ(FormatErrors({}, "agent.yaml"), "");
}

TEST(FormatErrors, FromARealParse) {
  LoadResult r = ParsePolicy("name: a\nallowed_host: [\"x.com\"]\n");
  EXPECT_EQ(FormatErrors(r.errors, "/etc/egressd/policies/a.yaml"),
            "/etc/egressd/policies/a.yaml:2:1: error: unknown key \"allowed_host\"; did you mean "
            "\"allowed_hosts\"?\n");
}

}  // namespace
// yaml-cpp 0.7's LoadAll loops forever on these (fuzz_policy_yaml found the
// first): the loader must answer, with an error, at once.
TEST(ParsePolicy, InputsThatHangYamlCppLoadAllAreRefused) {
  for (std::string_view text :
       {std::string_view(",--\n"), std::string_view("%YAML 1.2\n,--\n\n---\nname: b\n"),
        std::string_view(",--\n\n---\nname: b\n")}) {
    auto r = ParsePolicy(text);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_FALSE(r.errors.empty()) << text;
  }
}

}  // namespace egressd::policy

namespace egressd::policy {
namespace {

TEST(ParsePolicyTls, InterceptAndPassthrough) {
  Policy p = MustParse(
      "name: t\ntls:\n  intercept: [\"*\"]\n  passthrough: [\"*.Apple.com.\", \"pinned.test\"]\n");
  EXPECT_EQ(p.tls_intercept, std::vector<std::string>{"*"});
  EXPECT_EQ(p.tls_passthrough, (std::vector<std::string>{"*.apple.com", "pinned.test"}));
}

TEST(ParsePolicyTls, NoSectionInterceptsNothing) {
  Policy p = MustParse("name: t\n");
  EXPECT_TRUE(p.tls_intercept.empty());
  CompiledPolicy c(p);
  EXPECT_FALSE(c.can_intercept());
  EXPECT_FALSE(c.Intercepts("api.github.com"));
}

TEST(ParsePolicyTls, PassthroughWins) {
  CompiledPolicy c(
      MustParse("name: t\ntls:\n  intercept: [\"*.github.com\", \"x.test\"]\n  passthrough: "
                "[\"pinned.github.com\"]\n"));
  EXPECT_TRUE(c.can_intercept());
  EXPECT_TRUE(c.Intercepts("API.github.com."));
  EXPECT_FALSE(c.Intercepts("pinned.github.com"));
  EXPECT_FALSE(c.Intercepts("github.com"));  // *.github.com does not match the apex
  EXPECT_TRUE(c.Intercepts("x.test"));
  EXPECT_FALSE(c.Intercepts("not a host"));
}

void ExpectTlsError(const std::string& yaml, int line, const std::string& part) {
  LoadResult r = ParsePolicy(yaml);
  ASSERT_EQ(r.errors.size(), 1u) << yaml << "\n" << FormatErrors(r.errors, "test.yaml");
  EXPECT_FALSE(r.policy.has_value());
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].message;
  EXPECT_NE(r.errors[0].message.find(part), std::string::npos) << r.errors[0].message;
}

TEST(ParsePolicyTls, Errors) {
  ExpectTlsError("name: t\ntls: [\"*\"]\n", 2, "tls must be a mapping");
  ExpectTlsError("name: t\ntls:\n  intercpt: [\"*\"]\n", 3, "tls: unknown key");
  ExpectTlsError("name: t\ntls:\n  intercept: [\"a..b\"]\n", 3, "tls.intercept");
  ExpectTlsError("name: t\ntls:\n  intercept: \"*\"\n", 3, "tls.intercept");
  ExpectTlsError("name: t\ntls:\n  intercept: [a.test]\n  intercept: [b.test]\n", 4, "duplicate");
}

}  // namespace
}  // namespace egressd::policy
