#include "userspace/proxy/request_edits.h"

#include <gtest/gtest.h>

namespace egressd::proxy {
namespace {

using Kind = policy::RequestEdit::Kind;

protocol::HttpRequestHead Head(std::string target,
                               std::vector<std::pair<std::string, std::string>> headers) {
  protocol::HttpRequestHead head;
  head.method = "GET";
  head.target = std::move(target);
  head.headers = std::move(headers);
  return head;
}

TEST(RequestEditsTest, SetHeaderReplacesEveryFieldOfThatNameWithOne) {
  auto head = Head("/", {{"Host", "api.test"},
                         {"authorization", "Bearer from-the-client"},
                         {"Accept", "*/*"},
                         {"AUTHORIZATION", "second"}});
  ApplyRequestEdits({{Kind::kSetHeader, "Authorization", "Bearer injected"}}, head);
  std::vector<std::pair<std::string, std::string>> want = {
      {"Host", "api.test"}, {"Accept", "*/*"}, {"Authorization", "Bearer injected"}};
  EXPECT_EQ(head.headers, want);
}

TEST(RequestEditsTest, RemoveHeaderRemovesEveryFieldOfThatName) {
  auto head = Head("/", {{"Host", "a"}, {"Cookie", "x"}, {"cookie", "y"}});
  ApplyRequestEdits({{Kind::kRemoveHeader, "COOKIE", ""}}, head);
  std::vector<std::pair<std::string, std::string>> want = {{"Host", "a"}};
  EXPECT_EQ(head.headers, want);
}

TEST(RequestEditsTest, EditsApplyInOrder) {
  auto head = Head("/", {});
  ApplyRequestEdits({{Kind::kSetHeader, "X-A", "1"},
                     {Kind::kRemoveHeader, "x-a", ""},
                     {Kind::kSetHeader, "X-B", "2"}},
                    head);
  std::vector<std::pair<std::string, std::string>> want = {{"X-B", "2"}};
  EXPECT_EQ(head.headers, want);
}

TEST(RequestEditsTest, TargetPathLeavesOutQueryAndAuthority) {
  EXPECT_EQ(TargetPath("/a/b?x=1"), "/a/b");
  EXPECT_EQ(TargetPath("/a/b#frag"), "/a/b");
  EXPECT_EQ(TargetPath("http://h.test:8080/a/b?x=1"), "/a/b");
  EXPECT_EQ(TargetPath("http://h.test"), "/");
  EXPECT_EQ(TargetPath("http://h.test?x"), "/");
  EXPECT_EQ(TargetPath("*"), "*");
  EXPECT_EQ(TargetPath("/"), "/");
}

TEST(RequestEditsTest, SetQueryReplacesTheParameterAndEncodesTheValue) {
  EXPECT_EQ(SetQueryParameter("/search", "key", "v"), "/search?key=v");
  EXPECT_EQ(SetQueryParameter("/s?a=1&key=old&b=2", "key", "new"), "/s?a=1&b=2&key=new");
  EXPECT_EQ(SetQueryParameter("/s?key=1&key=2", "key", "x"), "/s?key=x");
  EXPECT_EQ(SetQueryParameter("/s?a=1#frag", "key", "a b&c=d"), "/s?a=1&key=a%20b%26c%3Dd");
  EXPECT_EQ(SetQueryParameter("http://h.test", "k", "v"), "http://h.test/?k=v");
  EXPECT_EQ(SetQueryParameter("http://h.test/p?k=0", "k", "v"), "http://h.test/p?k=v");
  EXPECT_EQ(SetQueryParameter("/s?", "k", "v"), "/s?k=v");
}

TEST(RequestEditsTest, SetQueryInTheHeadChangesOnlyTheTarget) {
  auto head = Head("/v1?x=1", {{"Host", "a"}});
  ApplyRequestEdits({{Kind::kSetQuery, "api_key", "s3cr=t"}}, head);
  EXPECT_EQ(head.target, "/v1?x=1&api_key=s3cr%3Dt");
  EXPECT_EQ(head.headers.size(), 1u);
}

protocol::HttpRequestHead Http11(std::vector<std::pair<std::string, std::string>> headers) {
  auto head = Head("/", std::move(headers));
  head.version_major = 1;
  head.version_minor = 1;
  return head;
}

TEST(DropConnectionCloseTest, DropsALoneCloseOfAnHttp11Request) {
  auto head = Http11({{"Host", "a.test"}, {"CONNECTION", " Close"}, {"Accept", "*/*"}});
  head.headers[1].second = "Close";  // OWS is trimmed by the parser
  EXPECT_TRUE(HasDroppableConnectionClose(head));
  EXPECT_TRUE(DropConnectionClose(head));
  std::vector<std::pair<std::string, std::string>> want = {{"Host", "a.test"}, {"Accept", "*/*"}};
  EXPECT_EQ(head.headers, want);
  EXPECT_FALSE(DropConnectionClose(head));  // nothing left to drop
}

TEST(DropConnectionCloseTest, LeavesEveryOtherConnectionFieldAlone) {
  for (auto headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {{"Connection", "close, x-private"}},  // another option it names
           {{"Connection", "close"}, {"Connection", "close"}},
           {{"Connection", "keep-alive"}},
           {{"Connection", "upgrade"}, {"Upgrade", "websocket"}},
           {{"Host", "a.test"}},
       }) {
    auto head = Http11(headers);
    EXPECT_FALSE(DropConnectionClose(head));
    EXPECT_EQ(head.headers, headers);
  }
  auto http10 = Head("/", {{"Connection", "close"}});
  http10.version_major = 1;
  http10.version_minor = 0;
  EXPECT_FALSE(DropConnectionClose(http10));
}

}  // namespace
}  // namespace egressd::proxy
