// Checks one direction of a WebSocket connection (RFC 6455 section 5) frame
// by frame as the bytes pass: fed any split of the byte stream, it decides on
// each frame header and skips payloads without buffering them, so the
// decision never depends on how TCP cut the stream.
//
// A frame is refused when it is not masked as its sender must (clients mask,
// servers do not), has an unknown opcode, sets a reserved bit that was not
// negotiated (RSV1 with permessage-deflate, on a message's first frame only;
// RSV2/RSV3 never), is a control frame that is fragmented or longer than 125
// bytes, breaks fragmentation (a continuation outside a message, a new
// message inside one), uses a non-minimal or over-2^63 length, or follows a
// Close frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace egressd::protocol {

struct WebSocketRules {
  bool from_client = true;    // client frames must be masked, server frames must not be
  bool rsv1_allowed = false;  // permessage-deflate negotiated
};

class WebSocketFrameValidator {
 public:
  enum class Result { kOk, kViolation };

  explicit WebSocketFrameValidator(WebSocketRules rules) : rules_(rules) {}

  // Feeds the next bytes of the stream. kOk: everything fed so far is valid
  // framing (possibly ending inside a frame). kViolation: error() says why;
  // every later call returns kViolation.
  Result Feed(std::span<const uint8_t> data);

  // Bytes at the end of what was fed that belong to a frame header not yet
  // complete (so not yet decided): a relay holds them back.
  size_t held() const { return in_header_ ? header_len_ : 0; }
  uint64_t frames() const { return frames_; }  // complete frame headers accepted
  const std::string& error() const { return error_; }
  uint64_t error_offset() const { return error_offset_; }  // stream offset of the offending byte

 private:
  // Checks of the header bytes seen so far; returns false on a violation.
  bool CheckByte0();
  bool CheckByte1();
  bool CheckLength();
  void HeaderComplete();
  bool Fail(std::string why);
  size_t HeaderSize() const;

  WebSocketRules rules_;
  bool failed_ = false;
  std::string error_;
  uint64_t error_offset_ = 0;
  uint64_t offset_ = 0;  // bytes fed so far
  uint64_t frames_ = 0;

  bool in_header_ = true;
  uint8_t header_[14] = {};
  size_t header_len_ = 0;
  uint64_t payload_left_ = 0;
  uint64_t payload_len_ = 0;
  bool in_message_ = false;  // a fragmented data message is open
  bool closed_ = false;      // a Close frame was sent: nothing may follow it
};

// From the 101 response's header fields: whether the server accepted
// permessage-deflate (RFC 7692), which lets data frames set RSV1.
bool NegotiatesPermessageDeflate(
    const std::vector<std::pair<std::string, std::string>>& response_headers);

}  // namespace egressd::protocol
