// A strict, incremental HTTP/1.x request parser over llhttp (every lenient
// flag off, plus the checks llhttp leaves to us), shaped for a proxy: it stops
// right after each request head and right after each message, so the caller
// can decide and forward exact byte ranges.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace egressd::protocol {

struct HttpRequestHead {
  std::string method;
  std::string target;
  int version_major = 1;
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // as received
  std::string host;  // lowercased, port and [] stripped: from Host or an absolute-form target
  std::optional<uint16_t> host_port;
  bool keep_alive = true;
  bool upgrade = false;
  bool expect_continue = false;
};

class HttpRequestStream {
 public:
  enum class Event { kNeedMore, kHeadComplete, kMessageComplete, kError };
  struct Step {
    Event event;
    size_t consumed;
  };

  HttpRequestStream();
  HttpRequestStream(const HttpRequestStream&) = delete;
  HttpRequestStream& operator=(const HttpRequestStream&) = delete;

  // Consumes as much of `data` as it can but stops after a request head
  // (kHeadComplete: consumed ends at the blank line) and after a message
  // (kMessageComplete). Right after kHeadComplete, an empty Feed completes a
  // request that has no body.
  Step Feed(std::span<const uint8_t> data);
  const HttpRequestHead& head() const { return head_; }
  const std::string& error() const { return error_; }

  static constexpr size_t kMaxHeadBytes = 16 * 1024;
  static constexpr size_t kMaxHeaders = 100;
  static constexpr size_t kMaxTarget = 8 * 1024;

 private:
  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnMessageComplete(llhttp_t* p);
  int Fail(std::string why);
  bool ValidateHead();
  bool ScanLineEndings(std::span<const uint8_t> bytes);

  llhttp_t parser_;
  llhttp_settings_t settings_;
  HttpRequestHead head_;
  std::string field_, value_;
  bool in_value_ = false;
  bool body_phase_ = false;  // between a head and the end of its message
  size_t head_bytes_ = 0;
  uint8_t prev_byte_ = 0;
  bool line_start_ = true;  // the next byte starts a line of the head
  Event paused_event_ = Event::kNeedMore;
  std::string error_;
  bool failed_ = false;
};

}  // namespace egressd::protocol
