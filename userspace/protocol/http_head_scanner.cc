#include "userspace/protocol/http_head_scanner.h"

#include <algorithm>

namespace egressd::protocol::detail {
namespace {

bool IsCtl(uint8_t c) {
  return c < 0x20 || c == 0x7f;
}

}  // namespace

HeadScanner::Result HeadScanner::Scan(std::span<const uint8_t> data, size_t* end) {
  for (size_t i = 0; i < data.size(); ++i) {
    if (state_ == State::kDone) {
      *end = i;
      return Result::kHeadEnd;
    }
    const uint8_t c = data[i];
    auto fail = [&](const char* why) {
      error_ = why;
      *end = i;
      return Result::kError;
    };
    if (++size_ > limit_) return fail("message head too large");
    switch (state_) {
      case State::kStart:  // empty lines before the start line are tolerated (RFC 9112 2.2)
        if (c == '\r') {
          state_ = State::kStartCR;
        } else if (c == '\n') {
          return fail("bare LF line ending");
        } else if (c == ' ' || c == '\t') {
          return fail("whitespace before the start line");
        } else if (IsCtl(c)) {
          return fail("control character in the start line");
        } else {
          state_ = State::kFirstLine;
          prev_space_ = false;
        }
        break;
      case State::kStartCR:
        if (c != '\n') return fail("bare CR");
        state_ = State::kStart;
        break;
      case State::kFirstLine:
        if (c == ' ' && is_request_) {
          if (prev_space_ || ++spaces_ > 2) return fail("malformed request line");
          prev_space_ = true;
          break;
        }
        prev_space_ = false;
        if (c == '\r') {
          if (is_request_ && spaces_ != 2) return fail("malformed request line");
          state_ = State::kFirstLineCR;
        } else if (c == '\n') {
          return fail("bare LF line ending");
        } else if (IsCtl(c)) {
          return fail("control character in the start line");
        }
        break;
      case State::kFirstLineCR:
      case State::kLineCR:
        if (c != '\n') return fail("bare CR");
        state_ = State::kLineStart;
        break;
      case State::kLineStart:
        if (c == '\r') {
          state_ = State::kEndCR;
        } else if (c == '\n') {
          return fail("bare LF line ending");
        } else if (c == ' ' || c == '\t') {
          return fail("obs-fold (header line starting with whitespace)");
        } else if (IsCtl(c)) {
          return fail("control character in header");
        } else {
          state_ = State::kLine;
        }
        break;
      case State::kLine:
        if (c == '\r') {
          state_ = State::kLineCR;
        } else if (c == '\n') {
          return fail("bare LF line ending");
        } else if (c != '\t' && IsCtl(c)) {
          return fail("control character in header");
        }
        break;
      case State::kEndCR:
        if (c != '\n') return fail("bare CR");
        state_ = State::kDone;
        *end = i + 1;
        return Result::kHeadEnd;
      case State::kDone:
        break;
    }
  }
  *end = data.size();
  return state_ == State::kDone ? Result::kHeadEnd : Result::kContinue;
}

}  // namespace egressd::protocol::detail

namespace egressd::protocol::detail {
namespace {

constexpr size_t kMaxChunkExtraBytes = 16 * 1024;

int HexValue(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

ChunkedScanner::Result ChunkedScanner::Scan(std::span<const uint8_t> data, size_t* end) {
  size_t i = 0;
  auto fail = [&](const char* why) {
    error_ = why;
    *end = i;
    return Result::kError;
  };
  while (i < data.size()) {
    if (state_ == State::kDone) break;
    if (state_ == State::kData) {
      uint64_t n = std::min<uint64_t>(remaining_, data.size() - i);
      remaining_ -= n;
      i += static_cast<size_t>(n);
      if (remaining_ == 0) state_ = State::kDataCR;
      continue;
    }
    const uint8_t c = data[i];
    switch (state_) {
      case State::kSize:
      case State::kSizeMore: {
        int v = HexValue(c);
        if (v >= 0) {
          if (++digits_ > 16) return fail("chunk size too large");
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(v);
          state_ = State::kSizeMore;
        } else if (state_ == State::kSize) {
          return fail("invalid chunk size");
        } else if (c == '\r') {
          state_ = State::kSizeLF;
        } else if (c == ';') {
          if (!allow_ext_) return fail("chunk extensions not allowed");
          state_ = State::kExt;
        } else {
          return fail("invalid chunk size");
        }
        break;
      }
      case State::kExt:
        if (++extra_bytes_ > kMaxChunkExtraBytes) return fail("chunk extensions too large");
        if (c == '\r') {
          state_ = State::kSizeLF;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
          return fail("control character in chunk extension");
        }
        break;
      case State::kSizeLF:
        if (c != '\n') return fail("chunk size line not terminated by CRLF");
        digits_ = 0;
        state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        break;
      case State::kDataCR:
        if (c != '\r') return fail("chunk data not followed by CRLF");
        state_ = State::kDataLF;
        break;
      case State::kDataLF:
        if (c != '\n') return fail("chunk data not followed by CRLF");
        state_ = State::kSize;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kEndLF;
        } else if (c == '\n') {
          return fail("chunked body not terminated by CRLF");
        } else if (!allow_ext_) {
          return fail("trailer fields not allowed in requests");
        } else if (c == ' ' || c == '\t') {
          return fail("obs-fold in trailer section");
        } else if (c < 0x20 || c == 0x7f) {
          return fail("control character in trailer section");
        } else {
          state_ = State::kTrailerLine;
        }
        break;
      case State::kTrailerLine:
        if (++extra_bytes_ > kMaxChunkExtraBytes) return fail("trailer section too large");
        if (c == '\r') {
          state_ = State::kTrailerLF;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
          return fail("control character in trailer section");
        }
        break;
      case State::kTrailerLF:
        if (c != '\n') return fail("bare CR in trailer section");
        state_ = State::kTrailerStart;
        break;
      case State::kEndLF:
        if (c != '\n') return fail("chunked body not terminated by CRLF");
        state_ = State::kDone;
        *end = i + 1;
        return Result::kDone;
      case State::kData:
      case State::kDone:
        break;
    }
    ++i;
  }
  *end = i;
  return state_ == State::kDone ? Result::kDone : Result::kContinue;
}

}  // namespace egressd::protocol::detail
