// A strict, incremental HTTP/1.x response parser over llhttp, for relaying an
// upstream's responses: it stops after each complete message so the proxy
// knows where one response ends (1xx interim responses are messages too).
#pragma once

#include <llhttp.h>

#include <span>
#include <string>
#include <string_view>

namespace egressd::protocol {

class HttpResponseStream {
 public:
  enum class Event { kNeedMore, kHeadComplete, kMessageComplete, kError };
  struct Step {
    Event event;
    size_t consumed;
  };

  HttpResponseStream();
  HttpResponseStream(const HttpResponseStream&) = delete;
  HttpResponseStream& operator=(const HttpResponseStream&) = delete;

  // Before the response arrives: a response to HEAD has no body whatever its headers say.
  void ExpectResponseTo(std::string_view request_method);
  Step Feed(std::span<const uint8_t> data);
  // Upstream EOF: completes a close-delimited body, or is an error mid-message.
  Step Finish();

  int status() const { return status_; }        // of the last response head
  bool keep_alive() const { return keep_alive_; }
  bool upgrade() const { return upgrade_; }
  const std::string& error() const { return error_; }

  static constexpr size_t kMaxHeadBytes = 64 * 1024;

 private:
  static int OnMessageBegin(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnMessageComplete(llhttp_t* p);

  llhttp_t parser_;
  llhttp_settings_t settings_;
  bool head_request_ = false;
  bool in_head_ = false;
  size_t head_bytes_ = 0;
  int status_ = 0;
  bool keep_alive_ = true;
  bool upgrade_ = false;
  bool completed_ = false;
  std::string error_;
  bool failed_ = false;
};

}  // namespace egressd::protocol
