#include "userspace/protocol/http_sniff.h"

#include "userspace/protocol/http_fields.h"

namespace egressd::protocol {

SniffResult SniffHttpRequest(std::span<const uint8_t> data) {
  if (data.empty()) return SniffResult::kNeedMore;
  if (data[0] < 'A' || data[0] > 'Z') return SniffResult::kNotHttp;
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == ' ') return i > 0 ? SniffResult::kHttp : SniffResult::kNotHttp;
    if (i >= kMaxMethodLength || !IsTokenChar(data[i])) return SniffResult::kNotHttp;
  }
  return SniffResult::kNeedMore;
}

}  // namespace egressd::protocol
