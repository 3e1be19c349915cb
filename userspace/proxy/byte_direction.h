// The bytes of one direction of a proxied connection (client -> upstream, or
// upstream -> client), in one buffer, following liburing's proxy example:
// received into the buffer and sent from it, at most one recv and one send in
// flight.
//
//   [0 ....... start ...... ready ...... scanned ...... end ...... cap)
//              |  may go now  |  parsed, held  | not parsed yet |
//
// A request head a filter changed is not sent from the buffer: a splice says
// "at `at`, send these bytes instead of [at, skip_to)".
//
// The buffer comes from the worker's RelayBufferPool and goes back to it
// when an idle connection is parked (connection_parking.cc): then the
// direction has no buffer and waits for its source to become readable.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "userspace/proxy/relay_buffer_pool.h"

namespace egressd::proxy {

struct HeadSplice {
  size_t at = 0;       // where in the buffer the replaced head began
  size_t skip_to = 0;  // where it ended: the next byte to send after `bytes`
  std::string bytes;   // the head as the filters left it
  size_t sent = 0;     // of `bytes`
};

// Where an idle direction is in giving its buffer back.
enum class Parking : uint8_t {
  kNo,          // holds a buffer (or never had one)
  kCancelling,  // its receive into the buffer is being cancelled
  kParked,      // no buffer; a poll waits for its source to become readable
};

struct Direction {
  RelayBuffer buf;
  size_t cap = 0;
  size_t start = 0;    // first byte not yet sent
  size_t ready = 0;    // [start, ready) may be sent now
  size_t scanned = 0;  // [.., scanned) has been through the parser (HTTP)
  size_t end = 0;      // received so far
  bool recv_pending = false;
  bool send_pending = false;
  bool eof = false;           // the source closed its side
  bool shut_written = false;  // we sent FIN to the destination
  Parking parking = Parking::kNo;
  size_t head_end = 0;                 // HTTP: the end of the request head being decided
  std::unique_ptr<HeadSplice> splice;  // usually none (an idle connection stays small)

  // False when no buffer could be had (out of memory).
  bool Allocate(RelayBufferPool& pool) {
    if (!buf) {
      buf = pool.Take();  // its pages stay untouched until used
      cap = buf ? pool.buffer_bytes() : 0;
    }
    return static_cast<bool>(buf);
  }
  // Gives the buffer back; only when nothing is in it and no operation uses it.
  void ReleaseBuffer() {
    buf.Release();
    cap = 0;
    Reset();
  }
  void Reset() {
    start = ready = scanned = end = head_end = 0;
    splice.reset();
  }
  bool idle() const { return !recv_pending && !send_pending; }

  // What goes out next: the buffer up to a splice, the splice's bytes, then
  // the buffer after the replaced head. Empty when nothing may go now.
  std::span<const uint8_t> NextToSend() const {
    if (splice && start == splice->at) {
      if (ready < splice->skip_to) return {};  // the head is not released yet
      return {reinterpret_cast<const uint8_t*>(splice->bytes.data()) + splice->sent,
              splice->bytes.size() - splice->sent};
    }
    size_t stop = splice && splice->at > start ? std::min(ready, splice->at) : ready;
    if (stop <= start) return {};
    return {buf.get() + start, stop - start};
  }
  // `n` bytes of NextToSend() went out.
  void Sent(size_t n) {
    if (splice && start == splice->at) {
      splice->sent += n;
      if (splice->sent == splice->bytes.size()) {
        start = splice->skip_to;
        splice.reset();
      }
      return;
    }
    start += n;
  }
  // Bytes before `pos` are never sent (they were meant for an upstream that
  // is gone); a splice among them goes too.
  void DiscardUpTo(size_t pos) {
    if (splice && pos > splice->at) {
      pos = std::max(pos, splice->skip_to);
      splice.reset();
    }
    start = std::max(start, pos);
  }
  bool HasUnsent() const { return !NextToSend().empty(); }
  // Everything received has been sent (nothing waits in the buffer).
  bool Drained() const { return start == end && !splice; }

  // When no operation in flight uses the buffer (`in_use` false; a TLS side
  // receives into and sends from buffers of its own): an emptied buffer
  // starts over, a full one moves [start, end) to its front. Returns how far
  // bytes moved.
  size_t Compact(bool in_use) {
    if (!buf || in_use || start == 0) return 0;
    if (start == end && !splice) {
      size_t shift = start;
      Reset();
      return shift;
    }
    if (end < cap) return 0;
    size_t shift = start;
    memmove(buf.get(), buf.get() + shift, end - shift);
    start = 0;
    ready -= shift;
    scanned -= shift;
    end -= shift;
    head_end = head_end > shift ? head_end - shift : 0;
    if (splice) {
      splice->at -= shift;
      splice->skip_to -= shift;
    }
    return shift;
  }
};

}  // namespace egressd::proxy
