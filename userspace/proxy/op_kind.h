// What an io_uring completion of a proxy worker is for. Every completion
// goes through one switch (Worker::Dispatch).
#pragma once

#include <cstddef>
#include <cstdint>

namespace egressd::proxy {

// What a completion is for: stored in the low 5 bits of user_data, the
// object pointer (32-byte aligned) or a number in the rest.
enum class OpKind : uint8_t {
  kAccept = 1,      // ptr: Listener
  kWake = 2,        // ptr: Worker (eventfd read: posted tasks or stop)
  kClientRecv = 3,  // ptr: Connection, for the rest
  kClientSend = 4,
  kUpstreamRecv = 5,
  kUpstreamSend = 6,
  kConnect = 7,
  kConnectTimeout = 8,
  kDeadline = 9,
  kCancel = 10,          // cancel / timeout-remove requests: only counted
  kAcceptRetry = 11,     // ptr: Listener; re-arm accept after an error
  kListenerCancel = 12,  // ptr: Worker; cancel of a removed listener's accept
  kIdleTimer = 13,       // ptr: Connection; no byte either way for --idle-timeout
  kClientReadable = 14,  // ptr: Connection; a parked direction's source is readable
  kUpstreamReadable = 15,
  kDnsAnswer = 16,  // number: a resolver attempt; its queries' socket is readable (AnswerWatch)
};
constexpr unsigned kOpKindBits = 5;
constexpr uint64_t kOpKindMask = (uint64_t{1} << kOpKindBits) - 1;
constexpr size_t kOpAlignment = size_t{1} << kOpKindBits;
static_assert(static_cast<uint64_t>(OpKind::kDnsAnswer) <= kOpKindMask,
              "the largest OpKind must fit in kOpKindBits");

inline uint64_t EncodeOp(const void* ptr, OpKind kind) {
  return reinterpret_cast<uintptr_t>(ptr) | static_cast<uint64_t>(kind);
}

}  // namespace egressd::proxy
