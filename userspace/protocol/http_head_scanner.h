// Byte-level validator for an HTTP/1.x message head, run ahead of llhttp so
// that strictness does not depend on how llhttp was compiled: CRLF line
// endings only (no bare CR, no bare LF), no obs-fold, no control characters,
// and a size limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace egressd::protocol::detail {

class HeadScanner {
 public:
  enum class Result { kContinue, kHeadEnd, kError };

  // is_request: the start line must be "method SP target SP version" with
  // exactly two single spaces.
  HeadScanner(size_t limit, bool is_request) : limit_(limit), is_request_(is_request) {}

  // Back to "before the start line" (at every message boundary).
  void Reset() {
    state_ = State::kStart;
    size_ = 0;
    spaces_ = 0;
    prev_space_ = false;
  }
  bool in_head() const { return state_ != State::kDone; }

  // Scans data from where the last call stopped. kHeadEnd: *end = offset just
  // past the blank line ending the head (the scanner then stops until Reset).
  // kError: *end = offset of the offending byte, error() says why.
  // kContinue: all of data is a valid head prefix.
  Result Scan(std::span<const uint8_t> data, size_t* end);
  const char* error() const { return error_; }
  bool too_large() const { return size_ > limit_; }

 private:
  enum class State {
    kStart,
    kStartCR,
    kFirstLine,
    kFirstLineCR,
    kLineStart,
    kLine,
    kLineCR,
    kEndCR,
    kDone
  };
  size_t limit_;
  bool is_request_;
  int spaces_ = 0;
  bool prev_space_ = false;
  State state_ = State::kStart;
  size_t size_ = 0;
  const char* error_ = "";
};

}  // namespace egressd::protocol::detail

namespace egressd::protocol::detail {

// Strict validator for a chunked message body, run over the same bytes llhttp
// parses: hex chunk sizes (at most 16 digits) ending in CRLF, chunk data
// followed by exactly CRLF, a CRLF-terminated trailer section without
// obs-fold or control characters. Chunk extensions and trailer fields are
// refused unless allowed (responses).
class ChunkedScanner {
 public:
  enum class Result { kContinue, kDone, kError };

  explicit ChunkedScanner(bool allow_extensions_and_trailers)
      : allow_ext_(allow_extensions_and_trailers) {}

  void Reset() {
    state_ = State::kSize;
    digits_ = 0;
    remaining_ = 0;
    extra_bytes_ = 0;
  }
  bool done() const { return state_ == State::kDone; }

  // kDone: *end = offset just past the final CRLF (scanning stops there).
  // kError: *end = offset of the offending byte. kContinue: all consumed.
  Result Scan(std::span<const uint8_t> data, size_t* end);
  const char* error() const { return error_; }

 private:
  enum class State {
    kSize,
    kSizeMore,
    kExt,
    kSizeLF,
    kData,
    kDataCR,
    kDataLF,
    kTrailerStart,
    kTrailerLine,
    kTrailerLF,
    kEndLF,
    kDone
  };
  bool allow_ext_;
  State state_ = State::kSize;
  int digits_ = 0;
  uint64_t remaining_ = 0;
  size_t extra_bytes_ = 0;  // extensions + trailers, bounded
  const char* error_ = "";
};

}  // namespace egressd::protocol::detail
