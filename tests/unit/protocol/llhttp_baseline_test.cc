// Documents what llhttp 8.1 (every lenient flag off) rejects on its own and
// what it lets through, which is why HttpRequestStream / HttpResponseStream
// add their own checks. Only behaviour that is the same whether or not llhttp
// is compiled with LLHTTP_STRICT_MODE is asserted here; see the notes at the
// end for the differences.
#include <gtest/gtest.h>
#include <llhttp.h>

#include <string>

namespace {

llhttp_errno_t RawParse(const std::string& in) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  return llhttp_execute(&parser, in.data(), in.size());
}

const std::string kPost = "POST / HTTP/1.1\r\nHost: a\r\n";
const std::string kChunked = kPost + "Transfer-Encoding: chunked\r\n\r\n";

TEST(LlhttpBaseline, RejectedByLlhttpItself) {
  EXPECT_EQ(RawParse(kPost + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            HPE_UNEXPECTED_CONTENT_LENGTH);
  EXPECT_EQ(RawParse(kPost + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
            HPE_UNEXPECTED_CONTENT_LENGTH);
  for (std::string cl : {"1, 1", "+1", "-1", "", "99999999999999999999999"}) {
    EXPECT_EQ(RawParse(kPost + "Content-Length: " + cl + "\r\n\r\nx"), HPE_INVALID_CONTENT_LENGTH)
        << cl;
  }
  for (std::string te : {"chunked, gzip", "identity", "xchunked"}) {
    EXPECT_EQ(RawParse(kPost + "Transfer-Encoding: " + te + "\r\n\r\n"),
              HPE_INVALID_TRANSFER_ENCODING)
        << te;
  }
  EXPECT_EQ(RawParse("GET / HTTP/1.1\nHost: a\n\n"), HPE_INVALID_HEADER_TOKEN);
  EXPECT_EQ(RawParse("GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n"), HPE_LF_EXPECTED);
  EXPECT_EQ(RawParse(std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 36)),
            HPE_INVALID_HEADER_TOKEN);
  EXPECT_EQ(RawParse("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), HPE_INVALID_VERSION);
  EXPECT_EQ(RawParse(kChunked + "fffffffffffffffff1\r\n"), HPE_INVALID_CHUNK_SIZE);
  EXPECT_EQ(RawParse(kChunked + "5 \r\nhello\r\n0\r\n\r\n"), HPE_INVALID_CHUNK_SIZE);
  EXPECT_EQ(RawParse(kChunked + "-5\r\nhello\r\n0\r\n\r\n"), HPE_INVALID_CHUNK_SIZE);
}

TEST(LlhttpBaseline, AcceptedByLlhttpSoCheckedByUs) {
  EXPECT_EQ(RawParse("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), HPE_OK);  // obs-fold
  EXPECT_EQ(RawParse("GET / HTTP/1.1\r\n\r\n"), HPE_OK);                           // no Host
  EXPECT_EQ(RawParse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), HPE_OK);     // two Hosts
  EXPECT_EQ(RawParse("GET /\r\n\r\n"), HPE_OK);                                    // HTTP/0.9
  EXPECT_EQ(RawParse("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), HPE_OK);
  EXPECT_EQ(RawParse("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), HPE_OK);  // double space
  EXPECT_EQ(RawParse(kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), HPE_OK);
  EXPECT_EQ(RawParse(kChunked + "5;a=b\r\nhello\r\n0\r\n\r\n"), HPE_OK);  // chunk extension
  EXPECT_EQ(RawParse(kChunked + "0\r\nX: y\r\n\r\n"), HPE_OK);            // request trailers
  EXPECT_EQ(RawParse(kChunked + "0\r\n\nGET"), HPE_OK);  // bare LF ends the chunked body
  // CONNECT is not an error, just a pause.
  EXPECT_EQ(RawParse("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), HPE_PAUSED_UPGRADE);
}

// Differences by build mode (cmake/llhttp.cmake compiles llhttp without
// LLHTTP_STRICT_MODE, i.e. loose): the loose build also accepts chunk data not
// followed by CRLF ("5\r\nhelloXX0\r\n\r\n"), a chunk-size line ending in CR
// plus any byte ("5\rX"), a TAB in the URL, and "Host : a" (space before the
// colon). HttpRequestStream rejects all of these itself.

}  // namespace
