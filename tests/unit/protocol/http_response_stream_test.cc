#include "userspace/protocol/http_response_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "userspace/protocol/http_request_stream.h"  // kMaxHttpHeadSize: one limit for both

namespace egressd::protocol {
namespace {

using Event = HttpResponseStream::Event;
using Events = std::vector<std::pair<Event, size_t>>;

std::span<const uint8_t> Span(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Events Drive(HttpResponseStream& s, std::string_view in, size_t chunk = std::string::npos) {
  Events out;
  size_t off = 0;
  size_t avail = std::min(chunk, in.size());
  for (int guard = 0; guard < 1000000; ++guard) {
    auto st = s.Feed(Span(in.substr(off, avail - off)));
    off += st.consumed;
    if (st.event == Event::kError) {
      out.emplace_back(Event::kError, off);
      break;
    }
    if (st.event == Event::kNeedMore) {
      EXPECT_EQ(off, avail);
      if (avail == in.size()) break;
      avail = std::min(avail + chunk, in.size());
      continue;
    }
    out.emplace_back(st.event, off);
    if (st.event == Event::kMessageComplete && off == in.size()) break;
  }
  return out;
}

Events DriveBoth(std::string_view in, std::string_view method = "GET") {
  HttpResponseStream a, b;
  a.ExpectResponseTo(method);
  b.ExpectResponseTo(method);
  Events whole = Drive(a, in);
  EXPECT_EQ(whole, Drive(b, in, 1)) << in;
  return whole;
}

std::string ErrorOf(std::string_view in, std::string_view method = "GET") {
  HttpResponseStream s;
  s.ExpectResponseTo(method);
  Events ev = Drive(s, in);
  if (ev.empty() || ev.back().first != Event::kError) {
    ADD_FAILURE() << "accepted: " << in;
    return "";
  }
  EXPECT_FALSE(s.error().empty());
  return s.error();
}

TEST(HttpResponseStream, ContentLengthBody) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n";
  std::string all = head + "hello";
  EXPECT_EQ(DriveBoth(all),
            (Events{{Event::kHeadComplete, head.size()}, {Event::kMessageComplete, all.size()}}));
  HttpResponseStream s;
  auto st = s.Feed(Span(all));
  EXPECT_EQ(st.event, Event::kHeadComplete);
  EXPECT_EQ(s.status(), 200);
  EXPECT_TRUE(s.keep_alive());
  EXPECT_FALSE(s.upgrade());
}

TEST(HttpResponseStream, ChunkedBodyWithTrailer) {
  std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string all = head + "5\r\nhello\r\n6;name=v\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n";
  EXPECT_EQ(DriveBoth(all),
            (Events{{Event::kHeadComplete, head.size()}, {Event::kMessageComplete, all.size()}}));
  EXPECT_EQ(ErrorOf(head + "5\r\nhelloXX0\r\n\r\n"), "chunk data not followed by CRLF");
  EXPECT_EQ(ErrorOf(head + "0\r\n\n"), "chunked body not terminated by CRLF");
  EXPECT_NE(ErrorOf(head + "zz\r\n"), "");
  EXPECT_EQ(ErrorOf(head + "0\r\nTransfer-Encoding: gzip\r\n\r\n"),
            "forbidden trailer field Transfer-Encoding");
  EXPECT_EQ(ErrorOf(head + "0\r\nconnection: close\r\n\r\n"), "forbidden trailer field connection");
  EXPECT_EQ(ErrorOf(head + "0\r\nX: 1\r\x01\r\n\r\n"), "bare CR in trailer section");
}

TEST(HttpResponseStream, HeadResponseHasNoBody) {
  std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
  EXPECT_EQ(DriveBoth(r, "HEAD"),
            (Events{{Event::kHeadComplete, r.size()}, {Event::kMessageComplete, r.size()}}));
  std::string c = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(DriveBoth(c, "HEAD"),
            (Events{{Event::kHeadComplete, c.size()}, {Event::kMessageComplete, c.size()}}));
}

TEST(HttpResponseStream, NoBodyStatuses) {
  for (std::string status : {"204 No Content", "304 Not Modified"}) {
    std::string r = "HTTP/1.1 " + status + "\r\nContent-Length: 10\r\n\r\n";
    EXPECT_EQ(DriveBoth(r),
              (Events{{Event::kHeadComplete, r.size()}, {Event::kMessageComplete, r.size()}}));
  }
}

TEST(HttpResponseStream, InterimResponsesThenFinal) {
  std::string c = "HTTP/1.1 100 Continue\r\n\r\n";
  std::string e = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n";
  std::string f = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  std::string all = c + e + f;
  EXPECT_EQ(DriveBoth(all), (Events{{Event::kHeadComplete, c.size()},
                                    {Event::kMessageComplete, c.size()},
                                    {Event::kHeadComplete, c.size() + e.size()},
                                    {Event::kMessageComplete, c.size() + e.size()},
                                    {Event::kHeadComplete, all.size() - 2},
                                    {Event::kMessageComplete, all.size()}}));
  HttpResponseStream s;
  ASSERT_EQ(s.Feed(Span(c)).event, Event::kHeadComplete);
  EXPECT_EQ(s.status(), 100);
  auto st = s.Feed({});
  EXPECT_EQ(st.event, Event::kMessageComplete);
  EXPECT_EQ(s.status(), 100);
}

TEST(HttpResponseStream, NothingAfterAResponseThatClosesTheConnection) {
  std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  HttpResponseStream s;
  EXPECT_EQ(Drive(s, r + "HTTP/1.1 200 OK\r\n"), (Events{{Event::kHeadComplete, r.size()},
                                                         {Event::kMessageComplete, r.size()},
                                                         {Event::kError, r.size()}}));
  EXPECT_EQ(s.error(), "data after a response that closes the connection");
  EXPECT_EQ(ErrorOf("HTTP/1.0 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\n"),
            "interim response that closes the connection");
}

TEST(HttpResponseStream, SwitchingProtocols) {
  std::string r =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  HttpResponseStream s;
  std::string all = r + "\x81\x02hi";
  auto st = s.Feed(Span(all));
  ASSERT_EQ(st.event, Event::kHeadComplete) << s.error();
  EXPECT_EQ(st.consumed, r.size());
  EXPECT_EQ(s.status(), 101);
  EXPECT_TRUE(s.upgrade());
  st = s.Feed(Span(std::string_view(all).substr(r.size())));
  EXPECT_EQ(st.event, Event::kMessageComplete);
  EXPECT_EQ(st.consumed, 0u);
}

TEST(HttpResponseStream, CloseDelimitedBody) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n";
  HttpResponseStream s;
  auto st = s.Feed(Span(head + "abc"));
  ASSERT_EQ(st.event, Event::kHeadComplete);
  EXPECT_FALSE(s.keep_alive());
  st = s.Feed(Span("abc"));
  EXPECT_EQ(st.event, Event::kNeedMore);
  EXPECT_EQ(st.consumed, 3u);
  st = s.Feed(Span("defgh"));
  EXPECT_EQ(st.event, Event::kNeedMore);
  EXPECT_EQ(s.Finish().event, Event::kMessageComplete);

  // EOF right after the head of a close-delimited response.
  HttpResponseStream t;
  ASSERT_EQ(t.Feed(Span(head)).event, Event::kHeadComplete);
  EXPECT_EQ(t.Finish().event, Event::kMessageComplete);

  // Non-chunked final coding in a response: body to EOF.
  HttpResponseStream g;
  ASSERT_EQ(g.Feed(Span("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")).event,
            Event::kHeadComplete)
      << g.error();
  EXPECT_EQ(g.Feed(Span("xxxx")).event, Event::kNeedMore);
  EXPECT_EQ(g.Finish().event, Event::kMessageComplete);
}

TEST(HttpResponseStream, FinishMidMessageIsError) {
  HttpResponseStream s;
  ASSERT_EQ(s.Feed(Span("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")).event,
            Event::kHeadComplete);
  EXPECT_EQ(s.Feed(Span("abc")).event, Event::kNeedMore);
  EXPECT_EQ(s.Finish().event, Event::kError);
  EXPECT_EQ(s.error(), "connection closed in the middle of a message");

  HttpResponseStream h;
  EXPECT_EQ(h.Feed(Span("HTTP/1.1 200 O")).event, Event::kNeedMore);
  EXPECT_EQ(h.Finish().event, Event::kError);

  HttpResponseStream n;
  EXPECT_EQ(n.Finish().event, Event::kError);
  EXPECT_EQ(n.error(), "connection closed before a response");

  HttpResponseStream c;
  ASSERT_EQ(c.Feed(Span("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")).event,
            Event::kHeadComplete);
  EXPECT_EQ(c.Feed(Span("5\r\nab")).event, Event::kNeedMore);
  EXPECT_EQ(c.Finish().event, Event::kError);
}

TEST(HttpResponseStream, KeepAlive) {
  auto keep = [](std::string_view r) {
    HttpResponseStream s;
    EXPECT_EQ(s.Feed(Span(r)).event, Event::kHeadComplete) << s.error();
    return s.keep_alive();
  };
  EXPECT_TRUE(keep("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(keep("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(keep("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_TRUE(keep("HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"));
}

TEST(HttpResponseStream, RejectsFramingAbuse) {
  EXPECT_NE(ErrorOf("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "");
  EXPECT_NE(ErrorOf("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), "");
  EXPECT_NE(ErrorOf("HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabc"), "");
  EXPECT_NE(ErrorOf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), "");
  EXPECT_EQ(ErrorOf("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
            "obs-fold (header line starting with whitespace)");
  EXPECT_EQ(ErrorOf("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), "bare LF line ending");
  EXPECT_EQ(ErrorOf("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), "bare CR");
  EXPECT_EQ(ErrorOf(std::string("HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", 23)),
            "control character in header");
  EXPECT_EQ(ErrorOf("HTTP/2.0 200 OK\r\n\r\n"), "unsupported HTTP version 2.0");
  EXPECT_NE(ErrorOf("HTTP/1.1 20 OK\r\n\r\n"), "");
  EXPECT_NE(ErrorOf("HTTP/1.1 999 What\r\n\r\n"), "");
  EXPECT_NE(ErrorOf("ICY 200 OK\r\n\r\n"), "");
  EXPECT_EQ(
      ErrorOf("HTTP/1.1 200 OK\r\nX: " + std::string(egressd::protocol::kMaxHttpHeadSize, 'a')),
      "message head too large");
}

TEST(HttpResponseStream, RejectsTransferEncodingInHttp10) {
  EXPECT_EQ(ErrorOf("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            "Transfer-Encoding in an HTTP/1.0 message");
}

// A framing decision never depends on how TCP split the bytes: a limit is on
// a whole field (here one chunk extension's value), never on the piece of it
// one llhttp callback happens to see (found by fuzz_http_response).
TEST(HttpResponseStream, ChunkExtensionLimitDoesNotDependOnHowBytesArrive) {
  auto chunked = [](const std::string& ext) {
    return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3" + ext + "\r\nabc\r\n0\r\n\r\n";
  };
  const std::string too_long = chunked(";n=" + std::string(1025, 'v'));
  const std::string quoted_too_long = chunked(";n=\"" + std::string(2000, 'v') + "\"");
  const std::string longest = chunked(";n=" + std::string(1024, 'v'));
  // The count starts again at every extension.
  const std::string two_long =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a=" + std::string(1000, 'v') +
      "\r\nabc\r\n3;b=" + std::string(1000, 'w') + "\r\ndef\r\n0\r\n\r\n";
  for (size_t piece : {std::string::npos, size_t{1}, size_t{7}, size_t{64}, size_t{1000}}) {
    for (const std::string* bad : {&too_long, &quoted_too_long}) {
      HttpResponseStream s;
      s.ExpectResponseTo("GET");
      Events ev = Drive(s, *bad, piece);
      ASSERT_FALSE(ev.empty());
      EXPECT_EQ(ev.back().first, Event::kError) << "piece " << piece;
      EXPECT_EQ(s.error(), "chunk extension too large") << "piece " << piece;
    }
    for (const std::string* good : {&longest, &two_long}) {
      HttpResponseStream s;
      s.ExpectResponseTo("GET");
      Events ev = Drive(s, *good, piece);
      ASSERT_FALSE(ev.empty());
      EXPECT_EQ(ev.back(), std::make_pair(Event::kMessageComplete, good->size()))
          << "piece " << piece << ": " << s.error();
    }
  }
}

TEST(HttpResponseStream, EveryPrefixIsNeedMoreOrProgress) {
  std::string all =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n";
  for (size_t n = 0; n <= all.size(); ++n) {
    HttpResponseStream s;
    for (const auto& e : Drive(s, std::string_view(all).substr(0, n))) {
      EXPECT_NE(e.first, Event::kError) << n << ": " << s.error();
    }
  }
}

}  // namespace
}  // namespace egressd::protocol
