// Reads the kernel's deny events from the ring buffer on a thread of its own
// and hands each to a callback (the daemon logs it; audit storage comes later).
#pragma once

#include <atomic>
#include <functional>
#include <thread>

#include "bpf/egressd_shared.h"
#include "userspace/common/status.h"

struct ring_buffer;

namespace egressd::kernel {

class AuditReader {
 public:
  using Callback = std::function<void(const egressd_event&)>;
  AuditReader() = default;
  ~AuditReader();
  AuditReader(const AuditReader&) = delete;
  AuditReader& operator=(const AuditReader&) = delete;

  Status Start(int ringbuf_map_fd, Callback callback);
  void Stop();

 private:
  static int OnSample(void* ctx, void* data, size_t size);
  Callback callback_;
  ring_buffer* ring_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace egressd::kernel
