// The HTTP session driven in memory: a fake owner plays the connection
// (routing, sending, closing) so every request/response path is checked
// without sockets or root. The real connection is covered end to end by
// tests/e2e/test_http*.py and test_proxy_*.py.
#include "userspace/proxy/http_session.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/userspace/proxy/fake_session_owner.h"

namespace egressd::proxy {
namespace {

const std::string kGet = "GET /a HTTP/1.1\r\nHost: allowed.test\r\nUser-Agent: t\r\n\r\n";
const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

TEST(HttpSession, AllowedRequestGoesAsReceivedAndItsResponseComesBack) {
  FakeConnection c;
  c.ClientSends(kGet);
  EXPECT_EQ(c.routed, std::vector<std::string>{"allowed.test"});
  EXPECT_EQ(c.to_upstream, kGet);  // byte for byte: not serialized again
  c.UpstreamSends(kOk);
  EXPECT_EQ(c.to_client, kOk);
  EXPECT_EQ(c.counters().requests_allowed, 1u);
  EXPECT_TRUE(c.closed.empty());
  EXPECT_FALSE(c.close_after_flush);  // keep-alive
}

TEST(HttpSession, DeniedHostGetsA403AndNothingGoesUpstream) {
  FakeConnection c;
  c.ClientSends("GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  EXPECT_TRUE(c.routed.empty());
  EXPECT_TRUE(c.to_upstream.empty());
  EXPECT_NE(c.reply.find("HTTP/1.1 403 Forbidden"), std::string::npos);
  EXPECT_NE(c.reply.find("evil.test"), std::string::npos);
  EXPECT_NE(c.reply.find("X-Egressd-Policy: unit"), std::string::npos);
  EXPECT_EQ(c.counters().requests_denied, 1u);
  EXPECT_TRUE(c.close_after_flush);
}

TEST(HttpSession, RepliesCarryTheirReasonCode) {
  FakeConnection c;
  c.ClientSends("GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  EXPECT_NE(c.reply.find("X-Egressd-Reason: denied_host\r\n"), std::string::npos) << c.reply;
  EXPECT_NE(c.reply.find("Content-Type: text/plain"), std::string::npos) << c.reply;
}

TEST(HttpSession, AcceptJsonGetsAJsonBody) {
  FakeConnection c;
  c.ClientSends(
      "GET / HTTP/1.1\r\nHost: evil.test\r\nAccept: text/html;q=0.5\r\n"
      "accept: application/json\r\n\r\n");
  EXPECT_NE(c.reply.find("Content-Type: application/json\r\n"), std::string::npos) << c.reply;
  EXPECT_NE(c.reply.find(R"("reason":"denied_host")"), std::string::npos) << c.reply;
  EXPECT_NE(c.reply.find(R"("host":"evil.test")"), std::string::npos) << c.reply;
}

TEST(HttpSession, HandlerRefusalsHaveTheirOwnCodes) {
  const std::string policy =
      "name: unit\nhandlers:\n  ro:\n    - allow_methods: [GET]\n"
      "    - allow_paths: [\"/ok/*\"]\nby_host:\n  allowed.test: ro\n";
  FakeConnection method(policy);
  method.ClientSends("POST /ok/a HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 0\r\n\r\n");
  EXPECT_NE(method.reply.find("X-Egressd-Reason: denied_method\r\n"), std::string::npos)
      << method.reply;
  EXPECT_NE(method.reply.find(R"(refused by policy "unit")"), std::string::npos) << method.reply;
  FakeConnection path(policy);
  path.ClientSends("GET /other HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
  EXPECT_NE(path.reply.find("X-Egressd-Reason: denied_path\r\n"), std::string::npos) << path.reply;
}

TEST(HttpSession, EveryKeepAliveRequestIsDecided) {
  FakeConnection c;
  c.ClientSends(kGet);
  c.UpstreamSends(kOk);
  c.ClientSends("GET /b HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  EXPECT_EQ(c.to_upstream, kGet);
  EXPECT_NE(c.reply.find("403"), std::string::npos);
  EXPECT_EQ(c.counters().requests_allowed, 1u);
  EXPECT_EQ(c.counters().requests_denied, 1u);
}

TEST(HttpSession, PipelinedRequestsAreDecidedOneAtATime) {
  FakeConnection c;
  // The second request waits for the first response: nothing of it goes before.
  c.ClientSends(kGet + "GET /b HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  EXPECT_EQ(c.to_upstream, kGet);
  EXPECT_TRUE(c.reply.empty());
  c.UpstreamSends(kOk);
  EXPECT_EQ(c.to_client, kOk);
  EXPECT_EQ(c.to_upstream, kGet);
  EXPECT_NE(c.reply.find("403"), std::string::npos);
}

TEST(HttpSession, AHostChangeRoutesAgain) {
  FakeConnection c;
  c.ClientSends(kGet);
  c.UpstreamSends(kOk);
  c.ClientSends("GET / HTTP/1.1\r\nHost: other.test\r\n\r\n");
  EXPECT_EQ(c.routed, (std::vector<std::string>{"allowed.test", "other.test"}));
  EXPECT_EQ(c.connects, 2);
}

TEST(HttpSession, AChangedHeadIsWrittenAgainAndTheBodyFollows) {
  FakeConnection c;
  std::string request =
      "POST /u HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello";
  c.ClientSends(request);
  EXPECT_EQ(c.to_upstream,
            "POST /u HTTP/1.1\r\nHost: allowed.test\r\nConnection: HTTP2-Settings\r\n"
            "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello");
}

TEST(HttpSession, AChangedHeadWaitsBehindTheBytesBeforeIt) {
  FakeConnection c;
  c.ClientSends(kGet);
  c.UpstreamSends(kOk);
  c.ClientSends(
      "GET / HTTP/1.1\r\nHost: allowed.test\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n");
  EXPECT_EQ(c.to_upstream, kGet + "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
}

TEST(HttpSession, ChunkedBodySplitAcrossReadsIsForwardedWhole) {
  FakeConnection c;
  std::string head = "POST /p HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n\r\n";
  c.ClientSends(head + "5\r\nhel");
  c.ClientSends("lo\r\n0\r\n\r\n");
  EXPECT_EQ(c.to_upstream, head + "5\r\nhello\r\n0\r\n\r\n");
  c.UpstreamSends(kOk);
  EXPECT_EQ(c.to_client, kOk);
  EXPECT_TRUE(c.closed.empty());
}

TEST(HttpSession, AHeadSplitAcrossReadsRunsUnderTheHeadDeadline) {
  FakeConnection c;
  c.ClientSends("GET / HTTP/1.1\r\nHo");
  EXPECT_TRUE(c.deadline_armed);
  EXPECT_TRUE(c.session_.reading_head());
  c.ClientSends("st: allowed.test\r\n\r\n");
  EXPECT_FALSE(c.deadline_armed);
  EXPECT_FALSE(c.session_.reading_head());
}

TEST(HttpSession, AResponseBeforeTheWholeBodyEndsTheConnection) {
  FakeConnection c;
  std::string head = "POST /p HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 10\r\n\r\n";
  c.ClientSends(head + "01234");
  c.UpstreamSends(kOk);
  EXPECT_EQ(c.to_client, kOk);
  EXPECT_TRUE(c.close_after_flush);
  // The rest of the body could be read upstream as a request nobody decided.
  c.ClientSends("56789GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
  EXPECT_EQ(c.to_upstream, head + "01234");
}

TEST(HttpSession, BytesAfterTheResponseNeverReachTheClient) {
  FakeConnection c;
  c.ClientSends(kGet);
  c.UpstreamSends(kOk + "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfake");
  EXPECT_EQ(c.to_client, kOk);
  EXPECT_TRUE(c.close_after_flush);
  EXPECT_EQ(c.counters().upstream_errors, 1u);
}

TEST(HttpSession, MalformedRequestGetsA400) {
  FakeConnection c;
  c.ClientSends(
      "GET / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  EXPECT_NE(c.reply.find("HTTP/1.1 400 Bad Request"), std::string::npos);
  EXPECT_TRUE(c.to_upstream.empty());
  EXPECT_EQ(c.counters().bad_requests, 1u);
}

TEST(HttpSession, OneReplyPerConnection) {
  FakeConnection c;
  c.ClientSends("GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  std::string first = c.reply;
  c.session_.Reply({502, ReplyReason::kUpstreamUnreachable, "late", "", 0});
  EXPECT_EQ(c.reply, first);
  EXPECT_TRUE(c.session_.finished());
}

TEST(HttpSession, WebSocketUpgradeBecomesATunnelAfterA101) {
  FakeConnection c;
  c.ClientSends(
      "GET /ws HTTP/1.1\r\nHost: allowed.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_FALSE(c.websocket);
  c.UpstreamSends(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  EXPECT_TRUE(c.websocket);
  EXPECT_TRUE(c.closed.empty());
}

TEST(HttpSession, A101WithoutAnUpgradeRequestCloses) {
  FakeConnection c;
  c.ClientSends(kGet);
  c.UpstreamSends(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  EXPECT_FALSE(c.websocket);
  EXPECT_NE(c.closed.find("switched protocols"), std::string::npos);
}

TEST(HttpSession, GetWithABodyIsRefusedUnlessThePolicySaysSo) {
  FakeConnection c;
  c.ClientSends("GET / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_NE(c.reply.find("400"), std::string::npos);
  EXPECT_TRUE(c.to_upstream.empty());
}

TEST(HttpSession, AuditModeForwardsWhatItWouldDeny) {
  FakeConnection c("name: unit\nmode: audit\nallowed_hosts: [\"allowed.test\"]\n");
  std::string request = "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n";
  c.ClientSends(request);
  EXPECT_TRUE(c.reply.empty());
  EXPECT_EQ(c.to_upstream, request);
  EXPECT_EQ(c.counters().requests_denied, 0u);
}

TEST(HttpSession, ClientCloseMidRequestCloses) {
  FakeConnection c;
  c.ClientSends("POST / HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 10\r\n\r\n01");
  EXPECT_TRUE(c.closed.empty());
  c.ClientSends("", true);  // a recv returns bytes or the end, never both
  EXPECT_NE(c.closed.find("middle of a request"), std::string::npos);
}

TEST(HttpSession, TheResponseDeadlineRunsFromTheCompleteRequestToTheFirstResponseByte) {
  FakeConnection c;
  std::string head = "POST /p HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\n\r\n";
  c.ClientSends(head + "ab");
  EXPECT_FALSE(c.response_deadline_armed);  // the body is still coming
  c.ClientSends("cd");
  EXPECT_TRUE(c.response_deadline_armed);
  EXPECT_TRUE(c.session_.awaiting_response());
  c.UpstreamSends("HTTP/1.1 200 OK\r\n");
  EXPECT_FALSE(c.response_deadline_armed);
  EXPECT_FALSE(c.session_.awaiting_response());
}

TEST(HttpSession, AHeadOverTheLimitsIs431) {
  FakeConnection c;
  std::string many = "GET / HTTP/1.1\r\nHost: allowed.test\r\n";
  for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  c.ClientSends(many + "\r\n");
  EXPECT_NE(c.reply.find("HTTP/1.1 431 Request Header Fields Too Large"), std::string::npos);
  EXPECT_EQ(c.counters().heads_too_large, 1u);
  EXPECT_EQ(c.limits.size(), 1u);
  EXPECT_TRUE(c.to_upstream.empty());
}

TEST(HttpSession, ATargetOverTheLimitIs414) {
  FakeConnection c;
  c.ClientSends("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
  EXPECT_NE(c.reply.find("HTTP/1.1 414 URI Too Long"), std::string::npos);
}

TEST(HttpSession, AGetWhosePooledUpstreamClosesGoesAgainOnANewOneOnce) {
  FakeConnection c;
  c.from_pool = true;
  c.ClientSends(kGet);
  EXPECT_EQ(c.to_upstream, kGet);
  c.UpstreamSends("", /*eof=*/true);  // closed before any byte of a response
  EXPECT_EQ(c.replaced, 1);
  EXPECT_EQ(c.to_upstream, kGet + kGet);
  EXPECT_TRUE(c.response_deadline_armed);
  EXPECT_TRUE(c.closed.empty());
  c.UpstreamSends("", /*eof=*/true);  // the new one too: no third try
  EXPECT_EQ(c.replaced, 1);
  EXPECT_FALSE(c.closed.empty());
  EXPECT_TRUE(c.to_client.empty());
}

TEST(HttpSession, ConnectionBoundAuthenticationKeepsTheUpstreamToItsClient) {
  {
    FakeConnection c;  // a plain exchange: the upstream may serve others
    c.ClientSends(kGet);
    c.UpstreamSends(kOk);
    EXPECT_FALSE(c.bound_to_client);
    EXPECT_TRUE(c.session_.upstream_reusable());
  }
  {
    FakeConnection c;  // a challenge: bound, even after the 200 that follows
    c.ClientSends(kGet);
    c.UpstreamSends(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n");
    EXPECT_TRUE(c.bound_to_client);
  }
  for (const char* scheme : {"NTLM", "negotiate"}) {
    FakeConnection c;  // a request that authenticates the connection
    c.ClientSends(std::string("GET /a HTTP/1.1\r\nHost: allowed.test\r\nAuthorization: ") + scheme +
                  " TlRMTVNTUAAB\r\n\r\n");
    EXPECT_TRUE(c.bound_to_client) << scheme;
  }
  {
    FakeConnection c;  // Basic authenticates the request only
    c.ClientSends("GET /a HTTP/1.1\r\nHost: allowed.test\r\nAuthorization: Basic dTpw\r\n\r\n");
    c.UpstreamSends(kOk);
    EXPECT_FALSE(c.bound_to_client);
  }
}

TEST(HttpSession, HeadAndOptionsGoAgainToo) {
  for (const std::string method : {"HEAD", "OPTIONS"}) {
    FakeConnection c;
    c.from_pool = true;
    const std::string head = method + " /a HTTP/1.1\r\nHost: allowed.test\r\n\r\n";
    c.ClientSends(head);
    c.UpstreamSends("", /*eof=*/true);
    EXPECT_EQ(c.replaced, 1) << method;
    EXPECT_EQ(c.to_upstream, head + head) << method;
  }
}

TEST(HttpSession, AResentRequestGetsItsResponse) {
  FakeConnection c;
  c.from_pool = true;
  c.ClientSends(kGet);
  c.UpstreamSends("", /*eof=*/true);
  c.UpstreamSends(kOk);
  EXPECT_EQ(c.to_client, kOk);
  EXPECT_TRUE(c.closed.empty());
  // The next request on that (new) upstream is not the pool's: not kept to resend.
  c.ClientSends(kGet);
  c.UpstreamSends("", /*eof=*/true);
  EXPECT_EQ(c.replaced, 1);
  EXPECT_FALSE(c.closed.empty());
}

TEST(HttpSession, AChangedHeadIsResentAsChanged) {
  FakeConnection c;
  c.from_pool = true;
  c.ClientSends("GET /a HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n");
  const std::string sent = c.to_upstream;
  EXPECT_EQ(sent.find("Connection"), std::string::npos);  // hop-by-hop, not forwarded
  c.UpstreamSends("", /*eof=*/true);
  EXPECT_EQ(c.to_upstream, sent + sent);
}

TEST(HttpSession, NoResendOfABodyAnUnsafeMethodOrAStartedResponse) {
  {
    FakeConnection c;  // a body: it may not be sent twice
    c.from_pool = true;
    c.ClientSends("POST /p HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\n\r\nbody");
    c.UpstreamSends("", /*eof=*/true);
    EXPECT_EQ(c.replaced, 0);
    EXPECT_FALSE(c.closed.empty());
  }
  {
    FakeConnection c;  // DELETE without a body: not a safe method
    c.from_pool = true;
    c.ClientSends("DELETE /d HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
    c.UpstreamSends("", /*eof=*/true);
    EXPECT_EQ(c.replaced, 0);
  }
  {
    FakeConnection c;  // part of a response came: the upstream did answer
    c.from_pool = true;
    c.ClientSends(kGet);
    c.UpstreamSends("HTTP/1.1 200", /*eof=*/true);
    EXPECT_EQ(c.replaced, 0);
  }
  {
    FakeConnection c;  // an upstream connected for this request: nothing to resend
    c.ClientSends(kGet);
    c.UpstreamSends("", /*eof=*/true);
    EXPECT_EQ(c.replaced, 0);
    EXPECT_FALSE(c.closed.empty());
  }
}

}  // namespace
}  // namespace egressd::proxy
