#include "policy/host_glob.h"

#include <gtest/gtest.h>

#include <initializer_list>

namespace egressd::policy {
namespace {

HostGlobSet Set(std::initializer_list<const char*> entries) {
  HostGlobSet set;
  for (const char* e : entries) {
    auto err = set.Add(e);
    EXPECT_FALSE(err) << e << ": " << *err;
  }
  return set;
}

std::string AddError(const char* pattern) {
  HostGlobSet set;
  auto err = set.Add(pattern);
  EXPECT_TRUE(err) << pattern << " was accepted";
  EXPECT_TRUE(set.empty()) << pattern;
  return err.value_or("");
}

TEST(NormalizeHost, LowercasesAndStripsOneTrailingDot) {
  EXPECT_EQ(NormalizeHost("GitHub.COM"), "github.com");
  EXPECT_EQ(NormalizeHost("github.com."), "github.com");
  EXPECT_EQ(NormalizeHost("a-b_c.example9.com"), "a-b_c.example9.com");
  EXPECT_FALSE(NormalizeHost("github.com.."));  // only one dot is stripped; ".." is no host
}

TEST(NormalizeHost, RejectsWhatIsNoHost) {
  for (const char* bad : {"", ".", "..", ".example.com", "a..b", "ex ample.com", "example.com/",
                          "user@example.com", "*.example.com", "*", "exa*mple.com", "\xc3\xa9.com",
                          "example.com:443", "[::1", "::1]", "[example.com]", "a\tb"}) {
    EXPECT_FALSE(NormalizeHost(bad)) << bad;
  }
  EXPECT_FALSE(NormalizeHost(std::string_view("a\0b", 3)));
}

TEST(NormalizeHost, LengthLimits) {
  std::string label63(63, 'a');
  std::string label64(64, 'a');
  EXPECT_TRUE(NormalizeHost(label63 + ".com"));
  EXPECT_FALSE(NormalizeHost(label64 + ".com"));
  // 253 characters is the longest name; 254 is refused, even with a trailing dot stripped first.
  std::string name253;
  while (name253.size() < 253) name253 += name253.empty() ? "a" : ".a";
  ASSERT_EQ(name253.size(), 253u);
  EXPECT_EQ(NormalizeHost(name253), name253);
  EXPECT_EQ(NormalizeHost(name253 + "."), name253);
  EXPECT_FALSE(NormalizeHost(name253 + "a"));
}

TEST(NormalizeHost, Ipv6LiteralsCanonical) {
  EXPECT_EQ(NormalizeHost("::1"), "::1");
  EXPECT_EQ(NormalizeHost("[::1]"), "::1");
  EXPECT_EQ(NormalizeHost("[0:0::1]"), "::1");
  EXPECT_EQ(NormalizeHost("2001:DB8::1"), "2001:db8::1");
  EXPECT_FALSE(NormalizeHost("[::1]:443"));
  EXPECT_FALSE(NormalizeHost("[fe80::1%eth0]"));
  EXPECT_FALSE(NormalizeHost(":::"));
}

TEST(NormalizeHost, Ipv4LiteralIsKeptAsWritten) {
  EXPECT_EQ(NormalizeHost("192.0.2.1"), "192.0.2.1");
}

TEST(NormalizeHostPattern, AcceptsStarsAndNormalizes) {
  std::string err;
  EXPECT_EQ(NormalizeHostPattern("*.GitHub.com.", &err), "*.github.com");
  EXPECT_EQ(NormalizeHostPattern("*", &err), "*");
  EXPECT_EQ(NormalizeHostPattern("api.*.com", &err), "api.*.com");
  EXPECT_EQ(NormalizeHostPattern("[::1]", &err), "::1");
  // A label with a star may be long: the star stands for fewer characters.
  EXPECT_TRUE(NormalizeHostPattern("x*" + std::string(70, 'a') + ".com", &err));
}

TEST(HostGlobSetAdd, RejectsMalformedPatterns) {
  EXPECT_EQ(AddError(""), "empty host");
  EXPECT_EQ(AddError("."), "empty host");
  EXPECT_EQ(AddError("**.example.com"),
            "\"**.example.com\": \"**\" in a pattern; a single '*' already matches across dots");
  EXPECT_EQ(AddError(".example.com"),
            "\".example.com\": starts with '.'; did you mean \"*.example.com\"?");
  EXPECT_EQ(AddError("a..example.com"), "\"a..example.com\": empty label (\"..\")");
  EXPECT_EQ(AddError("exa mple.com"), "\"exa mple.com\": contains whitespace");
  EXPECT_EQ(AddError("example.com/path"), "\"example.com/path\": invalid character '/'");
  EXPECT_EQ(AddError("https://example.com"),
            "\"https://example.com\": a URL; write the host name only, as in \"example.com\"");
  EXPECT_EQ(AddError("example.com:443"), "\"example.com:443\": a host entry takes no port");
  EXPECT_EQ(AddError("[::1]:443"), "\"[::1]:443\" is not a valid IPv6 address");
  EXPECT_EQ(AddError("*::1"), "\"*::1\": an IPv6 address cannot be a pattern");
  EXPECT_EQ(AddError("b\xc3\xbc"
                     "cher.de"),
            "\"b\xc3\xbc"
            "cher.de\": non-ASCII character; write the name in its xn-- (punycode) form");
  EXPECT_EQ(AddError("a\x01.com"), "\"a\x01.com\": contains a control character");
  EXPECT_NE(AddError((std::string(64, 'a') + ".com").c_str()).find("longer than 63"),
            std::string::npos);
  EXPECT_EQ(AddError(std::string(254, 'a').c_str()), "host longer than 253 characters");
}

TEST(HostGlobMatch, CaseInsensitiveBothWays) {
  auto set = Set({"GitHub.com", "*.NPMJS.org"});
  EXPECT_EQ(set.Match("github.com"), "github.com");
  EXPECT_EQ(set.Match("GITHUB.COM"), "github.com");
  EXPECT_EQ(set.Match("Registry.Npmjs.Org"), "*.npmjs.org");
}

TEST(HostGlobMatch, TrailingDotIgnoredBothWays) {
  auto set = Set({"example.com.", "*.example.org"});
  EXPECT_EQ(set.Match("example.com"), "example.com");
  EXPECT_EQ(set.Match("example.com."), "example.com");
  EXPECT_EQ(set.Match("www.example.org."), "*.example.org");
  EXPECT_FALSE(set.Match("example.com.."));
}

TEST(HostGlobMatch, StarMatchesAcrossDots) {
  auto set = Set({"*.github.com"});
  EXPECT_EQ(set.Match("api.github.com"), "*.github.com");
  EXPECT_EQ(set.Match("a.b.c.github.com"), "*.github.com");
  EXPECT_FALSE(set.Match("github.com.evil.com"));
  EXPECT_FALSE(set.Match("evilgithub.com"));
  EXPECT_FALSE(set.Match("api.github.co"));
}

TEST(HostGlobMatch, StarDotDoesNotMatchTheApex) {
  auto set = Set({"*.example.com"});
  EXPECT_FALSE(set.Match("example.com"));
  EXPECT_FALSE(set.Match(".example.com"));  // no valid host, and no match
  EXPECT_EQ(set.Match("x.example.com"), "*.example.com");
}

TEST(HostGlobMatch, StarMatchesTheEmptyRun) {
  auto set = Set({"api*.example.com"});
  EXPECT_EQ(set.Match("api.example.com"), "api*.example.com");
  EXPECT_EQ(set.Match("api-v2.example.com"), "api*.example.com");
  EXPECT_EQ(set.Match("api.eu.example.com"), "api*.example.com");  // across a dot too
  EXPECT_FALSE(set.Match("xapi.example.com"));
}

TEST(HostGlobMatch, StarInTheMiddle) {
  auto set = Set({"api.*.com"});
  EXPECT_EQ(set.Match("api.github.com"), "api.*.com");
  EXPECT_EQ(set.Match("api.eu.west.com"), "api.*.com");
  EXPECT_FALSE(set.Match("api.com"));  // "*" is empty, but both dots must be there
  EXPECT_FALSE(set.Match("api.github.org"));
  EXPECT_FALSE(set.Match("www.api.github.com"));
  EXPECT_FALSE(set.Match("api.github.com.evil.net"));
}

TEST(HostGlobMatch, LoneStarMatchesEveryHost) {
  auto set = Set({"*"});
  EXPECT_EQ(set.Match("example.com"), "*");
  EXPECT_EQ(set.Match("localhost"), "*");
  EXPECT_EQ(set.Match("10.0.0.1"), "*");
  EXPECT_EQ(set.Match("::1"), "*");
  EXPECT_FALSE(set.Match(""));  // still no valid host
}

TEST(HostGlobMatch, SeveralStars) {
  auto set = Set({"*.cdn.*.net"});
  EXPECT_EQ(set.Match("a.cdn.b.net"), "*.cdn.*.net");
  EXPECT_EQ(set.Match("x.y.cdn.z.w.net"), "*.cdn.*.net");
  EXPECT_FALSE(set.Match("cdn.b.net"));
  EXPECT_FALSE(set.Match("a.cdn.net"));
}

TEST(HostGlobMatch, SuffixStar) {
  auto set = Set({"internal.*"});
  EXPECT_EQ(set.Match("internal.corp"), "internal.*");
  EXPECT_FALSE(set.Match("internal"));
  EXPECT_FALSE(set.Match("notinternal.corp"));
}

TEST(HostGlobMatch, ExactEntryBeatsPattern) {
  auto set = Set({"*.github.com", "*", "api.github.com"});
  EXPECT_EQ(set.Match("api.github.com"), "api.github.com");
  EXPECT_EQ(set.Match("gist.github.com"), "*.github.com");
  EXPECT_EQ(set.Match("example.org"), "*");
}

TEST(HostGlobMatch, LongestPatternWinsRegardlessOfOrder) {
  auto a = Set({"*", "*.com", "*.github.com", "*.api.github.com"});
  auto b = Set({"*.api.github.com", "*.github.com", "*.com", "*"});
  for (const auto* set : {&a, &b}) {
    EXPECT_EQ(set->Match("v3.api.github.com"), "*.api.github.com");
    EXPECT_EQ(set->Match("api.github.com"), "*.github.com");
    EXPECT_EQ(set->Match("example.com"), "*.com");
    EXPECT_EQ(set->Match("example.org"), "*");
  }
}

TEST(HostGlobMatch, EqualLengthPatternsFirstAddedWins) {
  auto set = Set({"a*.example.com", "*b.example.com"});
  EXPECT_EQ(set.Match("ab.example.com"), "a*.example.com");
}

TEST(HostGlobMatch, Ipv6EntriesMatchAnySpelling) {
  auto set = Set({"[::1]", "2001:db8::5"});
  EXPECT_EQ(set.Match("::1"), "::1");
  EXPECT_EQ(set.Match("0:0:0:0:0:0:0:1"), "::1");
  EXPECT_EQ(set.Match("[2001:DB8:0::5]"), "2001:db8::5");
  EXPECT_FALSE(set.Match("::2"));
}

TEST(HostGlobMatch, InvalidHostNeverMatches) {
  auto set = Set({"*"});
  EXPECT_FALSE(set.Match("a*b"));  // a '*' in the host itself is not a wildcard
  EXPECT_FALSE(set.Match("bad host"));
  EXPECT_FALSE(set.Match("a..b"));
}

TEST(HostGlobSet, EmptyAndDuplicates) {
  HostGlobSet set;
  EXPECT_TRUE(set.empty());
  EXPECT_FALSE(set.Add("*.x.com"));
  EXPECT_FALSE(set.empty());
  EXPECT_FALSE(set.Add("*.X.com."));  // same pattern again: harmless
  EXPECT_EQ(set.Match("a.x.com"), "*.x.com");
  HostGlobSet exact;
  EXPECT_FALSE(exact.Add("x.com"));
  EXPECT_FALSE(exact.empty());
  EXPECT_FALSE(exact.Match("y.com"));
}

TEST(GlobMatch, Basics) {
  EXPECT_TRUE(GlobMatch("", ""));
  EXPECT_FALSE(GlobMatch("", "a"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("a*b*c", "abc"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(GlobMatch("*a", "aaaa"));
  EXPECT_FALSE(GlobMatch("*ab", "aaaa"));
  EXPECT_FALSE(GlobMatch("abc", "ab"));
  EXPECT_FALSE(GlobMatch("ab", "abc"));
}

TEST(GlobMatch, PathologicalInputStaysFast) {
  std::string host(253, 'a');
  std::string pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
  EXPECT_FALSE(GlobMatch(pattern, host));  // would take ages with naive backtracking
}

}  // namespace
}  // namespace egressd::policy
