#include "userspace/protocol/http_sniff.h"

namespace egressd::protocol {

SniffResult SniffHttpRequest(std::span<const uint8_t> data) {
  constexpr size_t kMaxMethod = 16;
  for (size_t i = 0; i < data.size() && i <= kMaxMethod; ++i) {
    uint8_t c = data[i];
    if (c == ' ') return i > 0 ? SniffResult::kHttp : SniffResult::kNotHttp;
    // RFC 9110 tokens, uppercase as every registered method is.
    bool token = (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
    if (!token) return SniffResult::kNotHttp;
  }
  return data.size() > kMaxMethod ? SniffResult::kNotHttp : SniffResult::kNeedMore;
}

}  // namespace egressd::protocol
