#include "userspace/kernel/audit_reader.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

namespace egressd::kernel {

AuditReader::~AuditReader() {
  Stop();
}

int AuditReader::OnSample(void* ctx, void* data, size_t size) {
  auto* self = static_cast<AuditReader*>(ctx);
  if (size < sizeof(egressd_event)) return 0;  // never from our programs; ignore
  egressd_event event;
  memcpy(&event, data, sizeof(event));
  self->callback_(event);
  return 0;
}

Status AuditReader::Start(int ringbuf_map_fd, Callback callback) {
  callback_ = std::move(callback);
  ring_ = ring_buffer__new(ringbuf_map_fd, &AuditReader::OnSample, this, nullptr);
  if (!ring_) return EGRESSD_ERROR("cannot open the event ring buffer: {}", strerror(errno));
  thread_ = std::thread([this] {
    // The programs wake us only when the ring is filling up (see emit_deny),
    // so drain it on a timer too: events reach the log within ~100 ms.
    while (!stop_.load(std::memory_order_relaxed)) {
      int n = ring_buffer__poll(ring_, 100);
      if (n < 0 && n != -EINTR) break;
      ring_buffer__consume(ring_);
    }
    ring_buffer__consume(ring_);
  });
  return {};
}

void AuditReader::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (ring_) ring_buffer__free(ring_);
  ring_ = nullptr;
}

}  // namespace egressd::kernel
