// DNS over TCP framing (RFC 1035 4.2.2, RFC 7766 8): every message is
// preceded by its length as two bytes, big-endian, and a client may send
// several messages back to back. DnsTcpFramer cuts such a byte stream into
// messages: fed any split of the stream, it gives the same messages and the
// same error at the same stream offset, so no decision depends on how TCP
// cut the bytes. It holds at most one incomplete message (2 + max bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace egressd::protocol {

class DnsTcpFramer {
 public:
  enum class Event {
    kNeedMore,  // every byte given was taken; the message is not complete yet
    kMessage,   // a message is complete: message() until the next Feed
    kError,     // a length the framer refuses: error() says why; stays failed
  };
  struct Step {
    Event event;
    size_t consumed;  // bytes of the given data taken by this step
  };

  // Messages longer than `max_message_bytes` (or empty) are an error.
  explicit DnsTcpFramer(size_t max_message_bytes) : max_(max_message_bytes) {}

  // Takes bytes from `data` up to the end of the next message. Call again
  // with the rest (data.subspan(consumed)) until it returns kNeedMore.
  Step Feed(std::span<const uint8_t> data);

  // The message of the last kMessage step (without its length prefix).
  std::span<const uint8_t> message() const { return {buf_.data() + 2, buf_.size() - 2}; }
  // Bytes of an incomplete message held (length prefix included).
  size_t held() const { return complete_ ? 0 : buf_.size(); }
  uint64_t messages() const { return messages_; }
  const std::string& error() const { return error_; }
  // Stream offset of the length prefix that was refused.
  uint64_t error_offset() const { return error_offset_; }

 private:
  size_t max_;
  std::vector<uint8_t> buf_;  // length prefix and message bytes of the current message
  bool complete_ = false;     // buf_ holds a whole message, handed out by the last step
  uint64_t offset_ = 0;       // stream bytes taken so far
  uint64_t messages_ = 0;
  std::string error_;
  uint64_t error_offset_ = 0;
};

// `message` with its two-byte length prefix; empty when it is longer than 65535 bytes.
std::vector<uint8_t> FrameDnsTcpMessage(std::span<const uint8_t> message);

}  // namespace egressd::protocol
