#include "userspace/protocol/websocket_frames.h"

#include <algorithm>

#include "userspace/protocol/http_fields.h"

namespace egressd::protocol {
namespace {

constexpr uint8_t kFin = 0x80;
constexpr uint8_t kRsv1 = 0x40;
constexpr uint8_t kRsv23 = 0x30;
constexpr uint8_t kOpcodeMask = 0x0f;
constexpr uint8_t kMasked = 0x80;
constexpr uint8_t kLen7Mask = 0x7f;
constexpr size_t kMaxControlPayload = 125;

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xa,
};

bool IsControl(uint8_t opcode) {
  return (opcode & 0x8) != 0;
}

}  // namespace

bool WebSocketFrameValidator::Fail(std::string why) {
  failed_ = true;
  error_ = std::move(why);
  error_offset_ = offset_;
  return false;
}

// Everything the first byte decides: reserved bits, opcode, fragmentation.
bool WebSocketFrameValidator::CheckByte0() {
  const uint8_t b0 = header_[0];
  const uint8_t opcode = b0 & kOpcodeMask;
  const bool fin = (b0 & kFin) != 0;
  if (closed_) return Fail("frame after a Close frame");
  if (opcode != kContinuation && opcode != kText && opcode != kBinary && opcode != kClose &&
      opcode != kPing && opcode != kPong) {
    return Fail("unknown opcode " + std::to_string(opcode));
  }
  if (b0 & kRsv23) return Fail("reserved bit RSV2 or RSV3 set");
  if (b0 & kRsv1) {
    if (!rules_.rsv1_allowed) return Fail("reserved bit RSV1 set without permessage-deflate");
    if (IsControl(opcode)) return Fail("RSV1 on a control frame");
    if (opcode == kContinuation) return Fail("RSV1 on a continuation frame");
  }
  if (IsControl(opcode)) {
    if (!fin) return Fail("fragmented control frame");
  } else if (opcode == kContinuation) {
    if (!in_message_) return Fail("continuation frame outside a fragmented message");
  } else if (in_message_) {
    return Fail("new data message inside a fragmented message");
  }
  return true;
}

bool WebSocketFrameValidator::CheckByte1() {
  const bool masked = (header_[1] & kMasked) != 0;
  if (rules_.from_client && !masked) return Fail("unmasked frame from the client");
  if (!rules_.from_client && masked) return Fail("masked frame from the server");
  const uint8_t len7 = header_[1] & kLen7Mask;
  if (IsControl(header_[0] & kOpcodeMask) && len7 > kMaxControlPayload) {
    return Fail("control frame longer than 125 bytes");
  }
  return true;
}

size_t WebSocketFrameValidator::HeaderSize() const {
  const uint8_t len7 = header_[1] & kLen7Mask;
  size_t size = 2;
  if (len7 == 126) size += 2;
  if (len7 == 127) size += 8;
  if (header_[1] & kMasked) size += 4;
  return size;
}

// Runs once the payload length (7, 16 or 64 bits) is complete.
bool WebSocketFrameValidator::CheckLength() {
  const uint8_t len7 = header_[1] & kLen7Mask;
  uint64_t len = len7;
  if (len7 == 126) {
    len = (uint64_t{header_[2]} << 8) | header_[3];
    if (len < 126) return Fail("payload length not minimally encoded");
  } else if (len7 == 127) {
    len = 0;
    for (int i = 2; i < 10; ++i) len = (len << 8) | header_[i];
    if (len >> 63) return Fail("payload length over 2^63");
    if (len <= 0xffff) return Fail("payload length not minimally encoded");
  }
  if ((header_[0] & kOpcodeMask) == kClose && len == 1) {
    return Fail("Close frame with a one-byte payload");
  }
  payload_len_ = len;
  return true;
}

void WebSocketFrameValidator::HeaderComplete() {
  const uint8_t opcode = header_[0] & kOpcodeMask;
  const bool fin = (header_[0] & kFin) != 0;
  if (opcode == kText || opcode == kBinary) in_message_ = !fin;
  if (opcode == kContinuation && fin) in_message_ = false;
  if (opcode == kClose) closed_ = true;
  frames_++;
  payload_left_ = payload_len_;
  in_header_ = payload_left_ == 0;
  header_len_ = 0;
}

WebSocketFrameValidator::Result WebSocketFrameValidator::Feed(std::span<const uint8_t> data) {
  if (failed_) return Result::kViolation;
  size_t i = 0;
  while (i < data.size()) {
    if (!in_header_) {
      uint64_t take = std::min<uint64_t>(payload_left_, data.size() - i);
      payload_left_ -= take;
      offset_ += take;
      i += static_cast<size_t>(take);
      if (payload_left_ == 0) in_header_ = true;
      continue;
    }
    header_[header_len_++] = data[i];
    bool ok = true;
    if (header_len_ == 1) ok = CheckByte0();
    if (header_len_ == 2) ok = CheckByte1();
    if (ok && header_len_ >= 2) {
      const uint8_t len7 = header_[1] & kLen7Mask;
      const size_t length_end = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
      if (header_len_ == length_end) ok = CheckLength();
      if (ok && header_len_ == HeaderSize()) HeaderComplete();
    }
    if (!ok) return Result::kViolation;
    offset_++;
    i++;
  }
  return Result::kOk;
}

bool NegotiatesPermessageDeflate(
    const std::vector<std::pair<std::string, std::string>>& response_headers) {
  for (const auto& [name, value] : response_headers) {
    if (!EqualsIgnoreCase(name, "sec-websocket-extensions")) continue;
    // extension *( ";" param ), comma separated.
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      std::string_view extension = TrimOws(item.substr(0, item.find(';')));
      if (EqualsIgnoreCase(extension, "permessage-deflate")) return true;
    }
  }
  return false;
}

}  // namespace egressd::protocol
