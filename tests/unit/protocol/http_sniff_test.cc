#include "userspace/protocol/http_sniff.h"

#include <gtest/gtest.h>

#include <string_view>

namespace egressd::protocol {
namespace {

SniffResult Sniff(std::string_view s) {
  return SniffHttpRequest({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

TEST(HttpSniff, CommonMethods) {
  for (std::string_view m : {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE",
                             "CONNECT", "PROPFIND", "M-SEARCH", "MKCOL", "VERSION-CONTROL"}) {
    std::string req = std::string(m) + " / HTTP/1.1\r\n";
    EXPECT_EQ(Sniff(req), SniffResult::kHttp) << m;
    // Every proper prefix up to and excluding the space needs more.
    for (size_t n = 0; n <= m.size(); ++n) {
      EXPECT_EQ(Sniff(std::string_view(req).substr(0, n)), SniffResult::kNeedMore) << m << " " << n;
    }
  }
}

TEST(HttpSniff, SixteenCharTokenLimit) {
  EXPECT_EQ(Sniff(std::string(16, 'A') + " /"), SniffResult::kHttp);
  EXPECT_EQ(Sniff(std::string(16, 'A')), SniffResult::kNeedMore);
  EXPECT_EQ(Sniff(std::string(17, 'A')), SniffResult::kNotHttp);
  EXPECT_EQ(Sniff(std::string(17, 'A') + " /"), SniffResult::kNotHttp);
}

TEST(HttpSniff, NotHttp) {
  EXPECT_EQ(Sniff("get / HTTP/1.1"), SniffResult::kNotHttp);  // lowercase
  EXPECT_EQ(Sniff(" GET /"), SniffResult::kNotHttp);          // leading space
  EXPECT_EQ(Sniff("\r\nGET /"), SniffResult::kNotHttp);
  EXPECT_EQ(Sniff("GET\t/"), SniffResult::kNotHttp);
  EXPECT_EQ(Sniff("GE(T /"), SniffResult::kNotHttp);
  EXPECT_EQ(Sniff("1GET /"), SniffResult::kNotHttp);
  EXPECT_EQ(Sniff("SSH-2.0-OpenSSH_9.2"), SniffResult::kNotHttp);
  EXPECT_EQ(Sniff(std::string_view("\x16\x03\x01\x02\x00", 5)), SniffResult::kNotHttp);
  EXPECT_EQ(Sniff(std::string_view("G\0T /", 5)), SniffResult::kNotHttp);
  EXPECT_EQ(Sniff("PRI * HTTP/2.0"), SniffResult::kHttp);  // sniffed; the request parser rejects it
}

TEST(HttpSniff, Empty) {
  EXPECT_EQ(Sniff(""), SniffResult::kNeedMore);
}

}  // namespace
}  // namespace egressd::protocol
