// The memory behind a Direction's bytes (byte_direction.h): one buffer of
// --buffer bytes per direction, mapped anonymous memory whose pages the
// kernel provides only when first touched and takes back whole when the
// buffer is unmapped. A connection that has been idle a while gives both
// its buffers back (connection_parking.cc), so what an idle connection
// costs is its own state, not pages of buffers.
//
// Returned buffers are kept for the next connections: under connection
// churn a buffer goes from one connection to the next with no system call
// and no page fault (an munmap in a multi-threaded process also costs every
// CPU running it a TLB flush). What the worker did not need for a whole
// trim period is unmapped (Trim, every second), down to `keep_min`: memory
// follows demand within a couple of seconds.
//
// One pool per worker, used only from its thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace egressd::proxy {

class RelayBufferPool;

// One buffer, given back to its pool when released or destroyed.
class RelayBuffer {
 public:
  RelayBuffer() = default;
  RelayBuffer(RelayBufferPool* pool, uint8_t* data) : pool_(pool), data_(data) {}
  ~RelayBuffer() { Release(); }
  RelayBuffer(RelayBuffer&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)), data_(std::exchange(other.data_, nullptr)) {}
  RelayBuffer& operator=(RelayBuffer&& other) noexcept {
    if (this != &other) {
      Release();
      pool_ = std::exchange(other.pool_, nullptr);
      data_ = std::exchange(other.data_, nullptr);
    }
    return *this;
  }
  RelayBuffer(const RelayBuffer&) = delete;
  RelayBuffer& operator=(const RelayBuffer&) = delete;

  uint8_t* get() const { return data_; }
  explicit operator bool() const { return data_ != nullptr; }
  void Release();

 private:
  RelayBufferPool* pool_ = nullptr;
  uint8_t* data_ = nullptr;
};

class RelayBufferPool {
 public:
  // Buffers of `buffer_bytes`; returned ones are kept mapped, at most
  // `keep_max`, and Trim leaves at least `keep_min`. `mapped_total` (may be
  // null) follows how many are mapped, summed with other pools'.
  RelayBufferPool(size_t buffer_bytes, size_t keep_min, size_t keep_max,
                  std::atomic<int64_t>* mapped_total = nullptr);
  ~RelayBufferPool();
  RelayBufferPool(const RelayBufferPool&) = delete;
  RelayBufferPool& operator=(const RelayBufferPool&) = delete;

  // An empty buffer when none can be mapped (out of memory or of mappings).
  RelayBuffer Take();
  size_t buffer_bytes() const { return buffer_bytes_; }
  // Buffers mapped now: held by connections or kept for them.
  size_t mapped() const { return mapped_; }
  size_t kept() const { return kept_.size(); }
  // Unmaps the kept buffers no Take needed since the last Trim (beyond keep_min).
  void Trim();

 private:
  friend class RelayBuffer;
  void Give(uint8_t* data);
  void Unmap(uint8_t* data);

  size_t buffer_bytes_;
  size_t keep_min_;
  size_t keep_max_;
  size_t mapped_ = 0;
  std::vector<uint8_t*> kept_;
  size_t low_water_ = 0;  // the fewest kept since the last Trim
  std::atomic<int64_t>* mapped_total_;
};

}  // namespace egressd::proxy
