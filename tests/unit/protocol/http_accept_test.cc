// The Accept preference egressd's own replies follow: JSON only for a client
// that prefers it to text.
#include "userspace/protocol/http_accept.h"

#include <gtest/gtest.h>

namespace egressd::protocol {
namespace {

TEST(AcceptPrefersJson, JsonAloneIsJson) {
  EXPECT_TRUE(AcceptPrefersJson("application/json"));
  EXPECT_TRUE(AcceptPrefersJson("Application/JSON"));
  EXPECT_TRUE(AcceptPrefersJson("application/json; charset=utf-8"));
  EXPECT_TRUE(AcceptPrefersJson("application/*"));
}

TEST(AcceptPrefersJson, NothingOrEverythingIsText) {
  EXPECT_FALSE(AcceptPrefersJson(""));
  EXPECT_FALSE(AcceptPrefersJson("*/*"));  // curl's default
  EXPECT_FALSE(AcceptPrefersJson("text/plain"));
  EXPECT_FALSE(AcceptPrefersJson("text/html"));
  // A browser: HTML first, everything else lower.
  EXPECT_FALSE(
      AcceptPrefersJson("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
}

TEST(AcceptPrefersJson, WeightsDecide) {
  EXPECT_TRUE(AcceptPrefersJson("text/plain;q=0.5, application/json"));
  EXPECT_FALSE(AcceptPrefersJson("text/plain, application/json;q=0.9"));
  EXPECT_TRUE(AcceptPrefersJson("application/json;q=0.8, */*;q=0.1"));
  EXPECT_FALSE(AcceptPrefersJson("application/json;q=0, */*"));  // q=0: not acceptable
  EXPECT_TRUE(AcceptPrefersJson("application/json;Q=1.000, text/*;q=0.999"));
}

TEST(AcceptPrefersJson, TiesGoToTheMoreSpecificThenTheFirst) {
  EXPECT_TRUE(AcceptPrefersJson("application/json, */*"));
  EXPECT_TRUE(AcceptPrefersJson("application/json, text/plain, */*"));  // axios
  EXPECT_FALSE(AcceptPrefersJson("text/plain, application/json"));
  EXPECT_FALSE(AcceptPrefersJson("application/*, text/plain"));
}

TEST(AcceptPrefersJson, MalformedIsText) {
  EXPECT_FALSE(AcceptPrefersJson("application/json;q=2"));
  EXPECT_FALSE(AcceptPrefersJson("application/json;q=0.12345"));
  EXPECT_FALSE(AcceptPrefersJson("application/json;q"));
  EXPECT_FALSE(AcceptPrefersJson("json"));
  EXPECT_FALSE(AcceptPrefersJson("application/"));
  EXPECT_TRUE(AcceptPrefersJson(",, application/json ,"));  // empty elements are allowed
}

}  // namespace
}  // namespace egressd::protocol
