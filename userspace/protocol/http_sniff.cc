#include "userspace/protocol/http_sniff.h"

namespace egressd::protocol {
namespace {

bool IsMethodChar(uint8_t c) {
  if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace

SniffResult SniffHttpRequest(std::span<const uint8_t> data) {
  if (data.empty()) return SniffResult::kNeedMore;
  if (data[0] < 'A' || data[0] > 'Z') return SniffResult::kNotHttp;
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == ' ') return i > 0 ? SniffResult::kHttp : SniffResult::kNotHttp;
    if (i >= kMaxMethodLength || !IsMethodChar(data[i])) return SniffResult::kNotHttp;
  }
  return SniffResult::kNeedMore;
}

}  // namespace egressd::protocol
