// Incremental, strict HTTP/1.x response parser (llhttp underneath).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace egressd::protocol {

namespace detail {
class HttpCore;
}

class HttpResponseStream {
 public:
  enum class Event { kNeedMore, kHeadComplete, kMessageComplete, kError };
  struct Step {
    Event event;
    size_t consumed;
  };

  HttpResponseStream();
  ~HttpResponseStream();
  HttpResponseStream(const HttpResponseStream&) = delete;
  HttpResponseStream& operator=(const HttpResponseStream&) = delete;

  // Call before the response head arrives: "HEAD" means the response has no
  // body regardless of Content-Length / Transfer-Encoding.
  void ExpectResponseTo(std::string_view request_method);

  // Same contract as HttpRequestStream::Feed. 1xx responses are complete
  // messages of their own (kHeadComplete, then kMessageComplete with status
  // 1xx); keep feeding for the final response. After 101 Switching Protocols
  // completes, stop using the parser (raw tunnel). 204/304: no body.
  Step Feed(std::span<const uint8_t> data);
  // Upstream EOF: completes a close-delimited body (kMessageComplete) or
  // kError if the EOF is in the middle of a message or before any response.
  Step Finish();

  int status() const;       // after kHeadComplete
  bool keep_alive() const;  // after kHeadComplete
  bool upgrade() const;     // after kHeadComplete: 101 with Connection: upgrade + Upgrade
  // After kHeadComplete: the header fields as received, in order (OWS trimmed).
  const std::vector<std::pair<std::string, std::string>>& headers() const;
  const std::string& error() const;

 private:
  std::unique_ptr<detail::HttpCore> core_;
};

}  // namespace egressd::protocol
