// The memory behind a Direction's bytes (byte_direction.h): one buffer of
// --buffer bytes per direction, mapped anonymous memory whose pages the
// kernel provides only when first touched and takes back whole when the
// buffer is unmapped. A connection that has been idle a while gives both
// its buffers back (connection_parking.cc), so what an idle connection
// costs is its own state, not pages of buffers. Each worker keeps a few
// returned buffers for the next connections (no system call under
// connection churn); past that many they are unmapped.
//
// One pool per worker, used only from its thread.
#pragma once

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
  // Buffers of `buffer_bytes`; at most `keep` returned ones are kept mapped.
  RelayBufferPool(size_t buffer_bytes, size_t keep);
  ~RelayBufferPool();
  RelayBufferPool(const RelayBufferPool&) = delete;
  RelayBufferPool& operator=(const RelayBufferPool&) = delete;

  // An empty buffer when none can be mapped (out of memory or of mappings).
  RelayBuffer Take();
  size_t buffer_bytes() const { return buffer_bytes_; }
  // Buffers mapped now: held by connections or kept for them.
  size_t mapped() const { return mapped_; }
  size_t kept() const { return kept_.size(); }

 private:
  friend class RelayBuffer;
  void Give(uint8_t* data);

  size_t buffer_bytes_;
  size_t keep_;
  size_t mapped_ = 0;
  std::vector<uint8_t*> kept_;
};

}  // namespace egressd::proxy
