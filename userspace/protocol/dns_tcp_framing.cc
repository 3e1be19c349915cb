#include "userspace/protocol/dns_tcp_framing.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace egressd::protocol {

DnsTcpFramer::Step DnsTcpFramer::Feed(std::span<const uint8_t> data) {
  if (!error_.empty()) return {Event::kError, 0};
  if (complete_) {
    buf_.clear();
    complete_ = false;
  }
  size_t taken = 0;
  if (buf_.size() < 2) {
    const size_t n = std::min(data.size(), 2 - buf_.size());
    buf_.insert(buf_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
    taken = n;
    offset_ += n;
    if (buf_.size() < 2) return {Event::kNeedMore, taken};
    const size_t length = static_cast<size_t>(buf_[0]) << 8 | buf_[1];
    if (length == 0 || length > max_) {
      error_offset_ = offset_ - 2;
      error_ = length == 0 ? std::string("empty message (length 0)")
                           : "message of " + std::to_string(length) + " bytes, more than " +
                                 std::to_string(max_);
      buf_.clear();
      return {Event::kError, taken};
    }
    buf_.reserve(2 + length);
  }
  const size_t length = static_cast<size_t>(buf_[0]) << 8 | buf_[1];
  const size_t n = std::min(data.size() - taken, 2 + length - buf_.size());
  buf_.insert(buf_.end(), data.begin() + static_cast<std::ptrdiff_t>(taken),
              data.begin() + static_cast<std::ptrdiff_t>(taken + n));
  taken += n;
  offset_ += n;
  if (buf_.size() < 2 + length) return {Event::kNeedMore, taken};
  complete_ = true;
  ++messages_;
  return {Event::kMessage, taken};
}

std::vector<uint8_t> FrameDnsTcpMessage(std::span<const uint8_t> message) {
  if (message.size() > 0xffff) return {};
  std::vector<uint8_t> framed(2 + message.size());
  framed[0] = static_cast<uint8_t>(message.size() >> 8);
  framed[1] = static_cast<uint8_t>(message.size() & 0xff);
  if (!message.empty()) std::memcpy(framed.data() + 2, message.data(), message.size());
  return framed;
}

}  // namespace egressd::protocol
