#include "userspace/protocol/http_response_stream.h"

#include <algorithm>

namespace egressd::protocol {
namespace {

HttpResponseStream* Self(llhttp_t* p) { return static_cast<HttpResponseStream*>(p->data); }

}  // namespace

HttpResponseStream::HttpResponseStream() {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &OnMessageBegin;
  settings_.on_headers_complete = &OnHeadersComplete;
  settings_.on_message_complete = &OnMessageComplete;
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

void HttpResponseStream::ExpectResponseTo(std::string_view request_method) {
  head_request_ = request_method == "HEAD";
}

int HttpResponseStream::OnMessageBegin(llhttp_t* p) {
  HttpResponseStream* s = Self(p);
  s->in_head_ = true;
  s->head_bytes_ = 0;
  return 0;
}

int HttpResponseStream::OnHeadersComplete(llhttp_t* p) {
  HttpResponseStream* s = Self(p);
  s->in_head_ = false;
  s->status_ = llhttp_get_status_code(p);
  s->keep_alive_ = llhttp_should_keep_alive(p) != 0;
  s->upgrade_ = s->status_ == 101;
  // 1 = this message has no body (a response to HEAD); llhttp knows 1xx/204/304 itself.
  return s->head_request_ && s->status_ >= 200 ? 1 : 0;
}

int HttpResponseStream::OnMessageComplete(llhttp_t* p) {
  HttpResponseStream* s = Self(p);
  s->keep_alive_ = llhttp_should_keep_alive(p) != 0;
  s->completed_ = true;
  return HPE_PAUSED;
}

HttpResponseStream::Step HttpResponseStream::Feed(std::span<const uint8_t> data) {
  if (failed_) return {Event::kError, 0};
  static const char kEmpty = 0;
  const char* begin = data.empty() ? &kEmpty : reinterpret_cast<const char*>(data.data());
  completed_ = false;
  llhttp_errno_t err = llhttp_execute(&parser_, begin, data.size());
  size_t consumed = data.size();
  if (err != HPE_OK) {
    const char* pos = llhttp_get_error_pos(&parser_);
    consumed = pos && pos >= begin ? std::min(static_cast<size_t>(pos - begin), data.size()) : 0;
  }
  if (in_head_) {
    head_bytes_ += consumed;
    if (head_bytes_ > kMaxHeadBytes) {
      failed_ = true;
      error_ = "response head larger than 64 KiB";
      return {Event::kError, consumed};
    }
  }
  if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && completed_) {
    if (err == HPE_PAUSED) llhttp_resume(&parser_);
    return {Event::kMessageComplete, consumed};
  }
  if (err == HPE_PAUSED_UPGRADE) return {Event::kMessageComplete, consumed};
  if (err != HPE_OK) {
    failed_ = true;
    error_ = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
    return {Event::kError, consumed};
  }
  return {Event::kNeedMore, consumed};
}

HttpResponseStream::Step HttpResponseStream::Finish() {
  if (failed_) return {Event::kError, 0};
  completed_ = false;
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (completed_) return {Event::kMessageComplete, 0};
  if (err != HPE_OK) {
    failed_ = true;
    error_ = std::string("upstream closed mid-response: ") + llhttp_errno_name(err);
    return {Event::kError, 0};
  }
  return {Event::kNeedMore, 0};
}

}  // namespace egressd::protocol
