#include "userspace/proxy/relay_buffer_pool.h"

#include <sys/mman.h>

namespace egressd::proxy {

void RelayBuffer::Release() {
  if (data_) pool_->Give(std::exchange(data_, nullptr));
  pool_ = nullptr;
}

RelayBufferPool::RelayBufferPool(size_t buffer_bytes, size_t keep)
    : buffer_bytes_(buffer_bytes), keep_(keep) {
  kept_.reserve(keep);
}

RelayBufferPool::~RelayBufferPool() {
  for (uint8_t* data : kept_) munmap(data, buffer_bytes_);
}

RelayBuffer RelayBufferPool::Take() {
  if (!kept_.empty()) {
    uint8_t* data = kept_.back();
    kept_.pop_back();
    return RelayBuffer(this, data);
  }
  void* data =
      mmap(nullptr, buffer_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) return {};
  mapped_++;
  return RelayBuffer(this, static_cast<uint8_t*>(data));
}

void RelayBufferPool::Give(uint8_t* data) {
  if (kept_.size() < keep_) {
    kept_.push_back(data);
    return;
  }
  munmap(data, buffer_bytes_);
  mapped_--;
}

}  // namespace egressd::proxy
