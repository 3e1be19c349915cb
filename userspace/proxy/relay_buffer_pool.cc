#include "userspace/proxy/relay_buffer_pool.h"

#include <sys/mman.h>

#include <algorithm>

namespace egressd::proxy {

void RelayBuffer::Release() {
  if (data_) pool_->Give(std::exchange(data_, nullptr));
  pool_ = nullptr;
}

RelayBufferPool::RelayBufferPool(size_t buffer_bytes, size_t keep_min, size_t keep_max)
    : buffer_bytes_(buffer_bytes), keep_min_(keep_min), keep_max_(keep_max) {}

RelayBufferPool::~RelayBufferPool() {
  for (uint8_t* data : kept_) munmap(data, buffer_bytes_);
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
  return RelayBuffer(this, static_cast<uint8_t*>(data));
}

void RelayBufferPool::Give(uint8_t* data) {
  if (kept_.size() < keep_max_) {
    kept_.push_back(data);
    return;
  }
  munmap(data, buffer_bytes_);
  mapped_--;
}

void RelayBufferPool::Trim() {
  // Those no Take reached in the period, as far as keep_min allows.
  size_t surplus =
      std::min(low_water_, kept_.size() > keep_min_ ? kept_.size() - keep_min_ : size_t{0});
  for (; surplus > 0 && !kept_.empty(); --surplus) {
    munmap(kept_.back(), buffer_bytes_);
    kept_.pop_back();
    mapped_--;
  }
  low_water_ = kept_.size();
}

}  // namespace egressd::proxy
