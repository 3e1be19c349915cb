#include "userspace/proxy/relay_buffer_pool.h"

#include <sys/mman.h>

#include <algorithm>

namespace egressd::proxy {

void RelayBuffer::Release() {
  if (data_) pool_->Give(std::exchange(data_, nullptr));
  pool_ = nullptr;
}

RelayBufferPool::RelayBufferPool(size_t buffer_bytes, size_t keep_min, size_t keep_max,
                                 std::atomic<int64_t>* mapped_total)
    : buffer_bytes_(buffer_bytes),
      keep_min_(keep_min),
      keep_max_(keep_max),
      mapped_total_(mapped_total) {}

RelayBufferPool::~RelayBufferPool() {
  for (uint8_t* data : kept_) Unmap(data);
}

RelayBuffer RelayBufferPool::Take() {
  if (!kept_.empty()) {
    uint8_t* data = kept_.back();
    kept_.pop_back();
    low_water_ = std::min(low_water_, kept_.size());
    return RelayBuffer(this, data);
  }
  void* data =
      mmap(nullptr, buffer_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) return {};
  mapped_++;
  if (mapped_total_) mapped_total_->fetch_add(1, std::memory_order_relaxed);
  return RelayBuffer(this, static_cast<uint8_t*>(data));
}

void RelayBufferPool::Give(uint8_t* data) {
  if (kept_.size() < keep_max_) {
    kept_.push_back(data);
    return;
  }
  Unmap(data);
}

void RelayBufferPool::Unmap(uint8_t* data) {
  munmap(data, buffer_bytes_);
  mapped_--;
  if (mapped_total_) mapped_total_->fetch_sub(1, std::memory_order_relaxed);
}

void RelayBufferPool::Trim() {
  // Those no Take reached in the period, as far as keep_min allows.
  size_t surplus =
      std::min(low_water_, kept_.size() > keep_min_ ? kept_.size() - keep_min_ : size_t{0});
  for (; surplus > 0 && !kept_.empty(); --surplus) {
    Unmap(kept_.back());
    kept_.pop_back();
  }
  low_water_ = kept_.size();
}

}  // namespace egressd::proxy
