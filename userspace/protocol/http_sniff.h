// Does a connection start like an HTTP/1.x request ("METHOD SP")?
#pragma once

#include <cstdint>
#include <span>

namespace egressd::protocol {

enum class SniffResult { kNeedMore, kHttp, kNotHttp };

SniffResult SniffHttpRequest(std::span<const uint8_t> data);

}  // namespace egressd::protocol
