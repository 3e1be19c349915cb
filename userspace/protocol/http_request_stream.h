// Incremental, strict HTTP/1.x request parser (llhttp underneath) that the
// proxy drives byte range by byte range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace egressd::protocol {

// Limits on one request head; exceeding any of them is an error.
inline constexpr size_t kMaxHttpHeadSize = 64 * 1024;  // request/status line + headers
inline constexpr size_t kMaxHttpHeaders = 100;
inline constexpr size_t kMaxHttpTargetSize = 8 * 1024;

struct HttpRequestHead {
  std::string method;
  std::string target;
  int version_major = 0;
  int version_minor = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order (OWS trimmed)
  // From the Host header (or absolute-form target): lowercased, port
  // stripped, [v6] brackets stripped, one trailing dot stripped.
  std::string host;
  std::optional<uint16_t> host_port;
  bool keep_alive = false;  // llhttp_should_keep_alive
  bool upgrade = false;     // Connection: upgrade + Upgrade header (WebSocket)
  bool expect_continue = false;
  // Content-Length above 0, or chunked (even an empty chunked body is one).
  bool has_body = false;
};

namespace detail {
class HttpCore;
}

class HttpRequestStream {
 public:
  enum class Event { kNeedMore, kHeadComplete, kMessageComplete, kError };
  struct Step {
    Event event;
    size_t consumed;
  };

  HttpRequestStream();
  ~HttpRequestStream();
  HttpRequestStream(const HttpRequestStream&) = delete;
  HttpRequestStream& operator=(const HttpRequestStream&) = delete;

  // Feeds bytes. Consumes as much as possible but stops right after a request
  // head is complete (kHeadComplete; `consumed` counts bytes up to and
  // including the blank line) and right after a message completes
  // (kMessageComplete; consumed includes the final byte of the message). The
  // caller re-feeds the unconsumed rest; an empty feed right after
  // kHeadComplete completes a request without a body. kNeedMore: all of data
  // consumed, message not complete. After kError every call returns kError.
  Step Feed(std::span<const uint8_t> data);

  const HttpRequestHead& head() const;  // valid from kHeadComplete until the next head starts
  const std::string& error() const;     // after kError: a short reason
  // After kError: the status a size limit calls for (431 for a head over
  // kMaxHttpHeadSize or with more than kMaxHttpHeaders fields, 414 for a
  // target over kMaxHttpTargetSize), or 0 when no limit was broken.
  int limit_status() const;

  // Between requests (the last one complete, nothing of the next fed):
  // frees the parser, most of this object's memory, for an idle connection.
  // The next Feed starts a fresh one, which goes on as this one would have.
  void ReleaseAtRest();

 private:
  std::unique_ptr<detail::HttpCore> core_;
};

}  // namespace egressd::protocol
