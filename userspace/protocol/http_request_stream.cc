#include "userspace/protocol/http_request_stream.h"

#include <algorithm>

#include "userspace/protocol/http_fields.h"

namespace egressd::protocol {
namespace {

HttpRequestStream* Self(llhttp_t* p) { return static_cast<HttpRequestStream*>(p->data); }

}  // namespace

HttpRequestStream::HttpRequestStream() {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &OnMessageBegin;
  settings_.on_url = &OnUrl;
  settings_.on_header_field = &OnHeaderField;
  settings_.on_header_value = &OnHeaderValue;
  settings_.on_header_value_complete = &OnHeaderValueComplete;
  settings_.on_headers_complete = &OnHeadersComplete;
  settings_.on_message_complete = &OnMessageComplete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
  // Strict: none of llhttp's lenient modes.
  llhttp_set_lenient_headers(&parser_, 0);
  llhttp_set_lenient_chunked_length(&parser_, 0);
  llhttp_set_lenient_keep_alive(&parser_, 0);
  llhttp_set_lenient_transfer_encoding(&parser_, 0);
}

int HttpRequestStream::Fail(std::string why) {
  if (!failed_) error_ = std::move(why);
  failed_ = true;
  return HPE_USER;
}

int HttpRequestStream::OnMessageBegin(llhttp_t* p) {
  HttpRequestStream* s = Self(p);
  s->head_ = HttpRequestHead{};
  s->field_.clear();
  s->value_.clear();
  s->in_value_ = false;
  return 0;
}

int HttpRequestStream::OnUrl(llhttp_t* p, const char* at, size_t len) {
  HttpRequestStream* s = Self(p);
  if (s->head_.target.size() + len > kMaxTarget) return s->Fail("request target longer than 8 KiB");
  s->head_.target.append(at, len);
  return 0;
}

int HttpRequestStream::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  HttpRequestStream* s = Self(p);
  if (s->in_value_) {
    s->field_.clear();
    s->value_.clear();
    s->in_value_ = false;
  }
  s->field_.append(at, len);
  return 0;
}

int HttpRequestStream::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  HttpRequestStream* s = Self(p);
  s->in_value_ = true;
  s->value_.append(at, len);
  return 0;
}

int HttpRequestStream::OnHeaderValueComplete(llhttp_t* p) {
  HttpRequestStream* s = Self(p);
  if (s->head_.headers.size() >= kMaxHeaders) return s->Fail("more than 100 headers");
  for (unsigned char c : s->value_) {
    if (c == '\r' || c == '\n') return s->Fail("obs-fold or line break inside a header value");
    if ((c < 0x20 && c != '\t') || c == 0x7f) return s->Fail("control character in a header value");
  }
  s->head_.headers.emplace_back(s->field_, std::string(Trim(s->value_)));
  s->field_.clear();
  s->value_.clear();
  s->in_value_ = false;
  return 0;
}

bool HttpRequestStream::ValidateHead() {
  HttpRequestHead& h = head_;
  h.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(&parser_)));
  h.version_major = llhttp_get_http_major(&parser_);
  h.version_minor = llhttp_get_http_minor(&parser_);
  if (h.version_major != 1 || h.version_minor > 1) return Fail("only HTTP/1.0 and HTTP/1.1"), false;
  if (h.method == "CONNECT") return Fail("CONNECT is not supported"), false;

  int content_length = 0, transfer_encoding = 0, host_headers = 0;
  std::string host_value;
  for (const auto& [name, value] : h.headers) {
    std::string n = ToLower(name);
    if (n == "content-length") {
      ++content_length;
      if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
        return Fail("malformed Content-Length"), false;
    } else if (n == "transfer-encoding") {
      ++transfer_encoding;
      if (ToLower(value) != "chunked") return Fail("Transfer-Encoding other than \"chunked\""), false;
    } else if (n == "host") {
      ++host_headers;
      host_value = value;
    } else if (n == "expect") {
      h.expect_continue = ToLower(value) == "100-continue";
    }
  }
  if (content_length > 1) return Fail("duplicate Content-Length"), false;
  if (transfer_encoding > 1) return Fail("duplicate Transfer-Encoding"), false;
  if (content_length && transfer_encoding) return Fail("Content-Length with Transfer-Encoding"), false;
  if (host_headers > 1) return Fail("more than one Host header"), false;

  std::optional<Authority> target_authority;
  if (h.target.rfind("http://", 0) == 0 || h.target.rfind("https://", 0) == 0 ||
      h.target.rfind("HTTP://", 0) == 0) {
    std::string_view rest = std::string_view(h.target).substr(h.target.find("://") + 3);
    std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    if (authority.find('@') != std::string_view::npos) return Fail("userinfo in the request target"), false;
    target_authority = ParseAuthority(authority);
    if (!target_authority) return Fail("malformed absolute-form target"), false;
  } else if (h.target.empty() || (h.target[0] != '/' && h.target != "*")) {
    return Fail("request target must be origin-form or absolute-form"), false;
  }
  if (host_headers == 1) {
    auto authority = ParseAuthority(host_value);
    if (!authority) return Fail(host_value.empty() ? "empty Host" : "malformed Host"), false;
    if (target_authority && target_authority->host != authority->host)
      return Fail("Host disagrees with the absolute-form target"), false;
    h.host = authority->host;
    h.host_port = authority->port;
  } else if (target_authority && h.version_minor == 0) {
    h.host = target_authority->host;
    h.host_port = target_authority->port;
  } else {
    return Fail("missing Host"), false;
  }
  h.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  h.upgrade = (parser_.flags & F_CONNECTION_UPGRADE) && (parser_.flags & F_UPGRADE);
  return true;
}

int HttpRequestStream::OnHeadersComplete(llhttp_t* p) {
  HttpRequestStream* s = Self(p);
  if (!s->ValidateHead()) return HPE_USER;
  s->paused_event_ = Event::kHeadComplete;
  return HPE_PAUSED;
}

int HttpRequestStream::OnMessageComplete(llhttp_t* p) {
  HttpRequestStream* s = Self(p);
  s->paused_event_ = Event::kMessageComplete;
  return HPE_PAUSED;
}

// llhttp 8 accepts a bare LF as a line end; we do not: a proxy and an origin
// that disagree on line ends is how requests get smuggled.
bool HttpRequestStream::ScanLineEndings(std::span<const uint8_t> bytes) {
  for (uint8_t c : bytes) {
    if (line_start_ && (c == ' ' || c == '\t')) return Fail("obs-fold (a line starting with whitespace)"), false;
    line_start_ = c == '\n';
    if (c == '\n' && prev_byte_ != '\r') return Fail("bare LF in the request head"), false;
    if (prev_byte_ == '\r' && c != '\n') return Fail("bare CR in the request head"), false;
    if (c == 0) return Fail("NUL in the request head"), false;
    prev_byte_ = c;
  }
  return true;
}

HttpRequestStream::Step HttpRequestStream::Feed(std::span<const uint8_t> data) {
  if (failed_) return {Event::kError, 0};
  static const char kEmpty = 0;
  const char* begin = data.empty() ? &kEmpty : reinterpret_cast<const char*>(data.data());
  paused_event_ = Event::kNeedMore;
  llhttp_errno_t err = llhttp_execute(&parser_, begin, data.size());
  size_t consumed = data.size();
  if (err != HPE_OK) {
    const char* pos = llhttp_get_error_pos(&parser_);
    consumed = pos && pos >= begin ? std::min(static_cast<size_t>(pos - begin), data.size()) : 0;
  }
  // Until a head completes, every byte consumed belongs to a request head.
  if (!body_phase_) {
    if (!ScanLineEndings(data.first(consumed))) return {Event::kError, consumed};
    head_bytes_ += consumed;
    if (head_bytes_ > kMaxHeadBytes) {
      Fail("request head larger than 16 KiB");
      return {Event::kError, consumed};
    }
  }
  if (err == HPE_PAUSED) {
    llhttp_resume(&parser_);
    if (paused_event_ == Event::kHeadComplete) {
      body_phase_ = true;
    } else if (paused_event_ == Event::kMessageComplete) {
      body_phase_ = false;
      head_bytes_ = 0;
      prev_byte_ = 0;
      line_start_ = true;
    }
    return {paused_event_, consumed};
  }
  if (err == HPE_PAUSED_UPGRADE) {
    // The request before was an upgrade: what follows is another protocol.
    Fail("data after an upgrade request");
    return {Event::kError, consumed};
  }
  if (err != HPE_OK) {
    Fail(std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_));
    return {Event::kError, consumed};
  }
  return {Event::kNeedMore, consumed};
}

}  // namespace egressd::protocol
