// Durations as io_uring timeouts take them, and as messages show them.
#pragma once

#include <linux/time_types.h>

#include <chrono>
#include <cstdint>

namespace egressd::proxy {

inline __kernel_timespec ToTimespec(std::chrono::nanoseconds d) {
  __kernel_timespec ts{};
  ts.tv_sec = d.count() / 1000000000;
  ts.tv_nsec = d.count() % 1000000000;
  return ts;
}

// Whole seconds (for "... within 30 s").
inline int64_t Seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace egressd::proxy
