// egressd's own replies: the reason and event headers, the text line, JSON
// for a client that prefers it, and the policy's deny_response for its denies.
#include "userspace/proxy/local_reply.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace egressd::proxy {
namespace {

std::string Body(const std::string& reply) {
  return reply.substr(reply.find("\r\n\r\n") + 4);
}

const LocalReply kDenied{403, ReplyReason::kDeniedHost,
                         "request to host \"x.test\" denied by policy \"p\": not in allowed_hosts",
                         "not in allowed_hosts", 42};

TEST(LocalReply, TextNamesTheReasonAndTheEvent) {
  std::string r = FormatLocalReply(kDenied, {"x.test", "p", false, nullptr});
  EXPECT_EQ(r.rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("\r\nX-Egressd-Reason: denied_host\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\nX-Egressd-Event: 42\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\nX-Egressd-Policy: p\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; charset=utf-8"), std::string::npos) << r;
  EXPECT_EQ(Body(r),
            "egressd: request to host \"x.test\" denied by policy \"p\": not in allowed_hosts "
            "(event 42)\n");
  EXPECT_NE(r.find("Content-Length: " + std::to_string(Body(r).size()) + "\r\n"),
            std::string::npos);
}

TEST(LocalReply, NoEventHeaderWithoutAnEvent) {
  std::string r =
      FormatLocalReply({502, ReplyReason::kUpstreamUnresolved, "name y does not resolve", "", 0},
                       {"", "p", false, nullptr});
  EXPECT_EQ(r.find("X-Egressd-Event"), std::string::npos) << r;
  EXPECT_NE(r.find("X-Egressd-Reason: upstream_unresolved"), std::string::npos) << r;
  EXPECT_EQ(Body(r), "egressd: name y does not resolve\n");
}

TEST(LocalReply, JsonWhenPreferred) {
  std::string r = FormatLocalReply(kDenied, {"x.test", "p", true, nullptr});
  EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos) << r;
  auto j = nlohmann::json::parse(Body(r));
  EXPECT_EQ(j["reason"], "denied_host");
  EXPECT_EQ(j["status"], 403);
  EXPECT_EQ(j["host"], "x.test");
  EXPECT_EQ(j["policy"], "p");
  EXPECT_EQ(j["rule"], "not in allowed_hosts");
  EXPECT_EQ(j["event"], 42);
  EXPECT_EQ(j["message"], kDenied.message);
}

TEST(LocalReply, DenyResponseShapesPolicyDeniesOnly) {
  policy::DenyResponse shaped{451, "application/json", R"({"h":"{{host}}","e":{{event}}})"};
  ReplyAudience audience{"x.test", "p", false, &shaped};
  std::string r = FormatLocalReply(kDenied, audience);
  EXPECT_EQ(r.rfind("HTTP/1.1 451 Unavailable For Legal Reasons\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("X-Egressd-Reason: denied_host"), std::string::npos) << r;
  EXPECT_EQ(Body(r), R"({"h":"x.test","e":42})");
  // An upstream failure keeps egressd's own reply.
  r = FormatLocalReply({504, ReplyReason::kUpstreamTimeout, "connect took too long", "", 7},
                       audience);
  EXPECT_EQ(r.rfind("HTTP/1.1 504 Gateway Timeout\r\n", 0), 0u) << r;
  EXPECT_EQ(Body(r), "egressd: connect took too long (event 7)\n");
}

TEST(ReplyReason, CodesAreStable) {
  EXPECT_STREQ(ReplyReasonCode(ReplyReason::kDeniedHost), "denied_host");
  EXPECT_STREQ(ReplyReasonCode(ReplyReason::kDeniedMethod), "denied_method");
  EXPECT_STREQ(ReplyReasonCode(ReplyReason::kUpstreamCertificate), "upstream_certificate");
  EXPECT_STREQ(ReplyReasonCode(ReplyReason::kMissingSecret), "missing_secret");
  EXPECT_STREQ(ReplyReasonCode(ReplyReason::kHostMismatch), "host_mismatch");
  EXPECT_TRUE(IsPolicyDeny(ReplyReason::kDeniedPath));
  EXPECT_FALSE(IsPolicyDeny(ReplyReason::kUpstreamUnreachable));
  EXPECT_FALSE(IsPolicyDeny(ReplyReason::kMissingSecret));
}

}  // namespace
}  // namespace egressd::proxy
