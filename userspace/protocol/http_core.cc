#include "userspace/protocol/http_core.h"

#include <utility>

#include "userspace/protocol/http_fields.h"

namespace egressd::protocol::detail {
namespace {

HttpCore* Self(llhttp_t* p) {
  return static_cast<HttpCore*>(p->data);
}

constexpr size_t kMaxTrailerBytes = 16 * 1024;
// One chunk extension's value, however many callbacks llhttp splits it into.
constexpr size_t kMaxChunkExtensionBytes = 1024;

}  // namespace

HttpCore::HttpCore(bool is_request)
    : is_request_(is_request), scanner_(kMaxHttpHeadSize, is_request), chunk_scanner_(!is_request) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &HttpCore::OnMessageBegin;
  settings_.on_method_complete = &HttpCore::OnMethodComplete;
  settings_.on_url = &HttpCore::OnUrl;
  settings_.on_header_field = &HttpCore::OnHeaderField;
  settings_.on_header_field_complete = &HttpCore::OnHeaderFieldComplete;
  settings_.on_header_value = &HttpCore::OnHeaderValue;
  settings_.on_header_value_complete = &HttpCore::OnHeaderValueComplete;
  settings_.on_headers_complete = &HttpCore::OnHeadersComplete;
  settings_.on_chunk_extension_name = &HttpCore::OnChunkExtensionName;
  settings_.on_chunk_extension_value = &HttpCore::OnChunkExtensionValue;
  settings_.on_chunk_extension_value_complete = &HttpCore::OnChunkExtensionValueComplete;
  settings_.on_message_complete = &HttpCore::OnMessageComplete;
  llhttp_init(&parser_, is_request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  // Every lenient flag off (the defaults, made explicit).
  llhttp_set_lenient_headers(&parser_, 0);
  llhttp_set_lenient_chunked_length(&parser_, 0);
  llhttp_set_lenient_keep_alive(&parser_, 0);
  llhttp_set_lenient_transfer_encoding(&parser_, 0);
}

int HttpCore::Fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  failed_ = true;
  return HPE_USER;
}

int HttpCore::FailLimit(std::string why, int status) {
  if (error_.empty()) limit_status_ = status;
  return Fail(std::move(why));
}

int HttpCore::OnMessageBegin(llhttp_t* p) {
  HttpCore* s = Self(p);
  s->in_message_ = true;
  s->head_done_ = false;
  s->head_ = HttpRequestHead{};
  s->status_ = 0;
  s->field_.clear();
  s->value_.clear();
  s->trailer_bytes_ = s->trailer_count_ = 0;
  s->content_length_count_ = s->transfer_encoding_count_ = s->host_count_ = 0;
  s->host_value_.clear();
  s->transfer_encoding_.clear();
  s->chunked_ = false;
  s->chunk_extension_value_bytes_ = 0;
  s->chunk_scanner_.Reset();
  return 0;
}

// llhttp takes PRI for the HTTP/2 connection preface and then never ends an
// HTTP/1 head where the head scanner does: refuse it by name instead.
int HttpCore::OnMethodComplete(llhttp_t* p) {
  HttpCore* s = Self(p);
  if (llhttp_get_method(p) == HTTP_PRI) return s->Fail("PRI method not allowed (HTTP/2 preface)");
  return 0;
}

int HttpCore::OnUrl(llhttp_t* p, const char* at, size_t len) {
  HttpCore* s = Self(p);
  if (s->head_.target.size() + len > kMaxHttpTargetSize)
    return s->FailLimit("request target too long", 414);
  s->head_.target.append(at, len);
  return 0;
}

int HttpCore::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  HttpCore* s = Self(p);
  if (s->head_done_) {
    if (s->is_request_) return s->Fail("trailer fields not allowed in requests");
    s->trailer_bytes_ += len;
    if (s->trailer_bytes_ > kMaxTrailerBytes) return s->Fail("trailer section too large");
  }
  s->field_.append(at, len);
  return 0;
}

int HttpCore::OnHeaderFieldComplete(llhttp_t* p) {
  HttpCore* s = Self(p);
  if (!IsToken(s->field_)) return s->Fail("invalid header name");
  size_t count = s->head_done_ ? ++s->trailer_count_ : s->head_.headers.size() + 1;
  if (count > kMaxHttpHeaders) return s->FailLimit("too many header fields", 431);
  return 0;
}

int HttpCore::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  HttpCore* s = Self(p);
  if (s->head_done_) {
    s->trailer_bytes_ += len;
    if (s->trailer_bytes_ > kMaxTrailerBytes) return s->Fail("trailer section too large");
  }
  s->value_.append(at, len);
  return 0;
}

int HttpCore::OnHeaderValueComplete(llhttp_t* p) {
  return Self(p)->HeaderDone();
}

int HttpCore::HeaderDone() {
  std::string name = std::move(field_);
  std::string value(TrimOws(value_));
  field_.clear();
  value_.clear();
  if (HasControlChar(value)) return Fail("control character in header value");
  if (head_done_) {
    // A (response) trailer field: forwarded as is, but never one that would
    // change framing or connection handling (RFC 9110 6.5.1).
    for (const char* forbidden : {"content-length", "transfer-encoding", "connection", "keep-alive",
                                  "upgrade", "host", "te", "trailer", "proxy-connection"}) {
      if (EqualsIgnoreCase(name, forbidden)) return Fail("forbidden trailer field " + name);
    }
    return 0;
  }
  if (EqualsIgnoreCase(name, "content-length")) {
    if (++content_length_count_ > 1) return Fail("duplicate Content-Length");
    auto length = ParseContentLength(value);
    if (!length) return Fail("malformed Content-Length");
    if (*length > 0) head_.has_body = true;
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    ++transfer_encoding_count_;
    if (!transfer_encoding_.empty()) transfer_encoding_ += ", ";
    transfer_encoding_ += value;
  }
  if (content_length_count_ > 0 && transfer_encoding_count_ > 0) {
    return Fail("Content-Length with Transfer-Encoding");
  } else if (EqualsIgnoreCase(name, "host")) {
    ++host_count_;
    host_value_ = value;
  } else if (EqualsIgnoreCase(name, "expect")) {
    if (EqualsIgnoreCase(value, "100-continue")) head_.expect_continue = true;
  }
  head_.headers.emplace_back(std::move(name), std::move(value));
  return 0;
}

int HttpCore::OnHeadersComplete(llhttp_t* p) {
  HttpCore* s = Self(p);
  int rc = s->HeadersComplete();
  if (rc != 0) return rc;
  s->head_done_ = true;
  s->pending_ = Pending::kHead;
  return HPE_PAUSED;
}

int HttpCore::HeadersComplete() {
  head_.version_major = llhttp_get_http_major(&parser_);
  head_.version_minor = llhttp_get_http_minor(&parser_);
  if (head_.version_major != 1 || (head_.version_minor != 0 && head_.version_minor != 1)) {
    return Fail("unsupported HTTP version " + std::to_string(head_.version_major) + "." +
                std::to_string(head_.version_minor));
  }
  if (content_length_count_ > 0 && transfer_encoding_count_ > 0) {
    return Fail("Content-Length with Transfer-Encoding");
  }
  // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
  // framing (1.0 peers do not know chunked and may read the body otherwise).
  if (transfer_encoding_count_ > 0 && head_.version_minor == 0) {
    return Fail("Transfer-Encoding in an HTTP/1.0 message");
  }
  int rc = is_request_ ? RequestHeadChecks() : ResponseHeadChecks();
  if (rc != 0) return rc;
  head_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  chunked_ = (parser_.flags & F_CHUNKED) && !(parser_.flags & F_SKIPBODY);
  if (chunked_) head_.has_body = true;
  return 0;
}

namespace {

// Splits an absolute-form target "http://authority/path" into scheme default
// port and authority. Returns false if the target is not absolute-form.
bool SplitAbsoluteTarget(std::string_view target, uint16_t* default_port,
                         std::string_view* authority) {
  std::string_view rest;
  if (target.size() >= 7 && EqualsIgnoreCase(target.substr(0, 7), "http://")) {
    *default_port = 80;
    rest = target.substr(7);
  } else if (target.size() >= 8 && EqualsIgnoreCase(target.substr(0, 8), "https://")) {
    *default_port = 443;
    rest = target.substr(8);
  } else {
    return false;
  }
  *authority = rest.substr(0, rest.find_first_of("/?#"));
  return true;
}

}  // namespace

int HttpCore::RequestHeadChecks() {
  auto method = static_cast<llhttp_method_t>(llhttp_get_method(&parser_));
  head_.method = llhttp_method_name(method);
  if (method == HTTP_CONNECT) return Fail("CONNECT method not allowed");
  if (transfer_encoding_count_ > 1) return Fail("duplicate Transfer-Encoding");
  if (transfer_encoding_count_ == 1 && !EqualsIgnoreCase(transfer_encoding_, "chunked")) {
    return Fail("unsupported Transfer-Encoding (only \"chunked\" is accepted)");
  }

  // Request target forms (RFC 9112 3.2): origin, absolute, asterisk (OPTIONS).
  const std::string& target = head_.target;
  uint16_t default_port = 0;
  std::string_view authority;
  bool absolute = false;
  if (!target.empty() && target.front() == '/') {
    // origin-form
  } else if (target == "*") {
    if (method != HTTP_OPTIONS) return Fail("asterisk-form target only with OPTIONS");
  } else if (SplitAbsoluteTarget(target, &default_port, &authority)) {
    absolute = true;
  } else {
    return Fail("unsupported request target form");
  }

  std::string why;
  std::optional<HostPort> from_target;
  if (absolute) {
    if (authority.find('@') != std::string_view::npos) return Fail("userinfo in request target");
    from_target = ParseHostPort(authority, &why);
    if (!from_target) return Fail("request target: " + why);
  }
  if (host_count_ > 1) return Fail("more than one Host header");
  if (host_count_ == 1) {
    if (host_value_.empty()) return Fail("empty Host");
    auto from_host = ParseHostPort(host_value_, &why);
    if (!from_host) return Fail(why);
    if (from_target) {
      if (from_host->host != from_target->host ||
          from_host->port.value_or(default_port) != from_target->port.value_or(default_port)) {
        return Fail("Host disagrees with absolute-form target");
      }
    } else {
      head_.host = std::move(from_host->host);
      head_.host_port = from_host->port;
    }
  } else if (head_.version_minor == 1 || !from_target) {
    return Fail("missing Host");
  }
  if (from_target) {
    head_.host = std::move(from_target->host);
    head_.host_port = from_target->port;
  }
  head_.upgrade = (parser_.flags & F_UPGRADE) && (parser_.flags & F_CONNECTION_UPGRADE);
  return 0;
}

int HttpCore::ResponseHeadChecks() {
  status_ = llhttp_get_status_code(&parser_);
  if (status_ < 100 || status_ > 599) return Fail("invalid status code");
  // Responses may legitimately end with a non-chunked coding (then the body
  // runs to EOF), but "chunked" anywhere but last is a framing attack.
  if (transfer_encoding_count_ > 0 && !(parser_.flags & F_CHUNKED)) {
    std::string te = ToLower(transfer_encoding_);
    if (te.find("chunked") != std::string::npos) return Fail("chunked is not the final coding");
  }
  if (response_to_head_ || status_ / 100 == 1 || status_ == 204 || status_ == 304) {
    parser_.flags |= F_SKIPBODY;  // no body regardless of framing headers
  }
  head_.upgrade = status_ == 101 && parser_.upgrade;
  if (status_ / 100 == 1 && status_ != 101 && !llhttp_should_keep_alive(&parser_)) {
    return Fail("interim response that closes the connection");
  }
  return 0;
}

int HttpCore::OnChunkExtensionName(llhttp_t* p, const char*, size_t len) {
  HttpCore* s = Self(p);
  if (s->is_request_) return s->Fail("chunk extensions not allowed");
  s->trailer_bytes_ += len;  // bounded together with the trailer section
  if (s->trailer_bytes_ > kMaxTrailerBytes) return s->Fail("chunk extensions too large");
  return 0;
}

// llhttp hands a value over in as many pieces as the bytes arrived in: the
// limit is on the sum, so it does not depend on how TCP split the stream.
int HttpCore::OnChunkExtensionValue(llhttp_t* p, const char*, size_t len) {
  HttpCore* s = Self(p);
  if (s->is_request_) return s->Fail("chunk extensions not allowed");
  s->chunk_extension_value_bytes_ += len;
  if (s->chunk_extension_value_bytes_ > kMaxChunkExtensionBytes) {
    return s->Fail("chunk extension too large");
  }
  s->trailer_bytes_ += len;
  if (s->trailer_bytes_ > kMaxTrailerBytes) return s->Fail("chunk extensions too large");
  return 0;
}

int HttpCore::OnChunkExtensionValueComplete(llhttp_t* p) {
  Self(p)->chunk_extension_value_bytes_ = 0;
  return 0;
}

int HttpCore::OnMessageComplete(llhttp_t* p) {
  HttpCore* s = Self(p);
  if (!s->head_done_) return s->Fail("message without a head");
  s->in_message_ = false;
  // After a message that ends the connection llhttp swallows (loose build) or
  // rejects (strict build) everything: refuse further bytes ourselves.
  s->closed_ = !s->head_.keep_alive || !llhttp_should_keep_alive(p);
  s->pending_ = Pending::kMessage;
  s->scanner_.Reset();
  return HPE_PAUSED;
}

HttpCore::Step HttpCore::Feed(std::span<const uint8_t> data) {
  if (failed_) return Error(0);
  static const char kNothing = 0;

  // 1. Settle earlier pauses without input: after kHeadComplete a message
  //    without a body completes right here; after an upgrade message llhttp
  //    pauses once more before it parses the next message.
  for (int round = 0; round < 3; ++round) {
    llhttp_errno_t paused = llhttp_get_errno(&parser_);
    if (paused == HPE_PAUSED) {
      llhttp_resume(&parser_);
    } else if (paused == HPE_PAUSED_UPGRADE) {
      llhttp_resume_after_upgrade(&parser_);
    } else {
      break;
    }
    pending_ = Pending::kNone;
    llhttp_errno_t err = llhttp_execute(&parser_, &kNothing, 0);
    if (err == HPE_OK) break;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      if (pending_ == Pending::kMessage && !(chunked_ && !chunk_scanner_.done())) {
        return {Event::kMessageComplete, 0};
      }
      if (pending_ != Pending::kNone) {
        Fail("internal: unexpected event without input");
        return Error(0);
      }
      continue;
    }
    return LlhttpError(err, 0);
  }
  if (llhttp_get_errno(&parser_) != HPE_OK) {
    Fail("internal: parser did not resume");
    return Error(0);
  }
  if (data.empty()) return {Event::kNeedMore, 0};
  if (closed_) {
    Fail(is_request_ ? "data after a request that closes the connection"
                     : "data after a response that closes the connection");
    return Error(0);
  }

  // 2. Our own strict checks run over the bytes first; llhttp must then
  //    agree on where the head / the chunked body ends.
  constexpr size_t kNone = static_cast<size_t>(-1);
  size_t head_end = kNone;
  size_t body_end = kNone;
  size_t end = 0;
  if (scanner_.in_head()) {
    auto r = scanner_.Scan(data, &end);
    if (r == HeadScanner::Result::kError) {
      if (scanner_.too_large()) {
        FailLimit(scanner_.error(), 431);
      } else {
        Fail(scanner_.error());
      }
      return Error(end);
    }
    if (r == HeadScanner::Result::kHeadEnd) head_end = end;
  } else if (chunked_ && in_message_ && !chunk_scanner_.done()) {
    auto r = chunk_scanner_.Scan(data, &end);
    if (r == ChunkedScanner::Result::kError) {
      Fail(chunk_scanner_.error());
      return Error(end);
    }
    if (r == ChunkedScanner::Result::kDone) body_end = end;
  }

  // 3. llhttp, which stops (pauses) after a head and after a message.
  const char* base = reinterpret_cast<const char*>(data.data());
  const bool chunked_body = chunked_ && in_message_;
  pending_ = Pending::kNone;
  llhttp_errno_t err = llhttp_execute(&parser_, base, data.size());
  size_t used = data.size();
  if (err != HPE_OK) {
    const char* pos = llhttp_get_error_pos(&parser_);
    if (pos >= base && pos <= base + data.size()) used = static_cast<size_t>(pos - base);
  }
  if (err == HPE_OK) {
    if (head_end != kNone || body_end != kNone) {
      Fail("internal: framing disagreement with llhttp");
      return Error(used);
    }
    return {Event::kNeedMore, used};
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    if (pending_ == Pending::kHead) {
      if (head_end != used) {
        Fail("internal: head end disagreement with llhttp");
        return Error(used);
      }
      return {Event::kHeadComplete, used};
    }
    if (pending_ == Pending::kMessage) {
      if (chunked_body && body_end != used) {
        Fail("internal: chunked framing disagreement with llhttp");
        return Error(used);
      }
      return {Event::kMessageComplete, used};
    }
    Fail("internal: unexpected pause");
    return Error(used);
  }
  return LlhttpError(err, used);
}

HttpCore::Step HttpCore::LlhttpError(llhttp_errno_t err, size_t consumed) {
  if (error_.empty()) {
    const char* reason = llhttp_get_error_reason(&parser_);
    error_ = reason != nullptr && *reason != '\0' ? reason : llhttp_errno_name(err);
  }
  failed_ = true;
  return Error(consumed);
}

HttpCore::Step HttpCore::Finish() {
  if (failed_) return Error(0);
  // Run any pending transitions (e.g. right after a head) before EOF.
  Step step = Feed({});
  if (step.event != Event::kNeedMore) return step;
  if (!in_message_) {
    Fail("connection closed before a response");
    return Error(0);
  }
  pending_ = Pending::kNone;
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (pending_ == Pending::kMessage) return {Event::kMessageComplete, 0};
  if (err == HPE_OK && !in_message_) return {Event::kMessageComplete, 0};
  Fail(err == HPE_OK || err == HPE_INVALID_EOF_STATE
           ? "connection closed in the middle of a message"
           : llhttp_errno_name(err));
  return Error(0);
}

}  // namespace egressd::protocol::detail
