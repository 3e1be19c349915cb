// Cheap classification of a connection's first bytes as an HTTP/1.x request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace egressd::protocol {

enum class SniffResult { kNeedMore, kHttp, kNotHttp };

// Longest method token accepted.
inline constexpr size_t kMaxMethodLength = 16;

// kHttp when data starts with an HTTP method token (uppercase: starts with
// A-Z, then A-Z, 0-9 or RFC 9110 tchar punctuation; 1..16 characters)
// followed by a space. kNeedMore while all bytes so far could still be such a
// prefix. Everything else is kNotHttp. The full request is validated later by
// HttpRequestStream.
SniffResult SniffHttpRequest(std::span<const uint8_t> data);

}  // namespace egressd::protocol
