// Shared llhttp driver behind HttpRequestStream and HttpResponseStream.
// Internal: includes llhttp.h.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "userspace/protocol/http_head_scanner.h"
#include "userspace/protocol/http_request_stream.h"

namespace egressd::protocol::detail {

class HttpCore {
 public:
  enum class Event { kNeedMore, kHeadComplete, kMessageComplete, kError };
  struct Step {
    Event event;
    size_t consumed;
  };

  explicit HttpCore(bool is_request);
  HttpCore(const HttpCore&) = delete;
  HttpCore& operator=(const HttpCore&) = delete;

  Step Feed(std::span<const uint8_t> data);
  Step Finish();  // responses: EOF from the server

  void set_response_to_head(bool v) { response_to_head_ = v; }
  // Between messages, nothing failed, the connection goes on: a fresh
  // parser would go on exactly as this one.
  bool AtRest() const { return !in_message_ && !failed_ && !closed_; }
  const HttpRequestHead& head() const { return head_; }
  int status() const { return status_; }
  const std::string& error() const { return error_; }
  int limit_status() const { return limit_status_; }

 private:
  enum class Pending { kNone, kHead, kMessage };

  // llhttp callbacks (static trampolines to the members below).
  static int OnMessageBegin(llhttp_t* p);
  static int OnMethodComplete(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderFieldComplete(llhttp_t* p);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnChunkExtensionName(llhttp_t* p, const char* at, size_t len);
  static int OnChunkExtensionValue(llhttp_t* p, const char* at, size_t len);
  static int OnChunkExtensionValueComplete(llhttp_t* p);
  static int OnMessageComplete(llhttp_t* p);

  int Fail(std::string why);
  // A size limit broke: `status` is the HTTP status that says so (431, 414).
  int FailLimit(std::string why, int status);
  int HeaderDone();
  int HeadersComplete();
  int RequestHeadChecks();
  int ResponseHeadChecks();
  Step Error(size_t consumed) { return {Event::kError, consumed}; }
  Step LlhttpError(llhttp_errno_t err, size_t consumed);

  const bool is_request_;
  llhttp_settings_t settings_;
  llhttp_t parser_;
  HeadScanner scanner_;

  bool failed_ = false;
  int limit_status_ = 0;
  std::string error_;
  Pending pending_ = Pending::kNone;
  bool in_message_ = false;
  bool head_done_ = false;  // of the current message; header callbacks after it are trailers
  bool response_to_head_ = false;
  bool closed_ = false;  // a message that ends the connection has completed

  // Current message.
  HttpRequestHead head_;
  int status_ = 0;
  std::string field_;
  std::string value_;
  size_t trailer_bytes_ = 0;
  size_t trailer_count_ = 0;
  size_t content_length_count_ = 0;
  size_t transfer_encoding_count_ = 0;
  size_t host_count_ = 0;
  std::string host_value_;
  std::string transfer_encoding_;
  bool chunked_ = false;                    // the current message has a chunked body
  size_t chunk_extension_value_bytes_ = 0;  // of the extension value being parsed
  // Strict chunked framing, checked on the same bytes llhttp parses (a
  // non-strict llhttp build lets e.g. "5\r\nhelloXX" through).
  ChunkedScanner chunk_scanner_;
};

}  // namespace egressd::protocol::detail
