#include "userspace/tls/ciphertext_buffers.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace egressd::tls {

namespace {

// Large buffers given back are kept for the thread's next stream (a bulk
// transfer frees its output buffer every time it is all sent, and takes one
// again for the next record): no malloc, no page faults on the data path.
// At most kSpares per size and thread (workers are threads), so a quiet
// process keeps a few, not one per connection.
constexpr size_t kSpares = 4;
static_assert(CiphertextBuffers::kOutCapacity != CiphertextBuffers::kInLarge,
              "one spare list per size");

// Set when the thread's lists are destroyed (at its exit): a stream freed
// after that (a static's destructor) frees its buffers directly. A plain
// bool, readable at any time.
thread_local bool spares_gone = false;

struct Spares {
  size_t size;
  std::vector<std::unique_ptr<uint8_t[]>> kept;

  ~Spares() { spares_gone = true; }
  std::unique_ptr<uint8_t[]> Take() {
    if (kept.empty()) return std::make_unique_for_overwrite<uint8_t[]>(size);
    std::unique_ptr<uint8_t[]> b = std::move(kept.back());
    kept.pop_back();
    return b;
  }
  void GiveBack(std::unique_ptr<uint8_t[]> b) {
    if (kept.size() < kSpares) kept.push_back(std::move(b));
  }
};

Spares& SpareList(size_t size) {
  thread_local Spares out{CiphertextBuffers::kOutCapacity, {}};
  thread_local Spares large_in{CiphertextBuffers::kInLarge, {}};
  return size == CiphertextBuffers::kOutCapacity ? out : large_in;
}

// A buffer of `size` bytes: a spare when one is kept (large sizes only).
std::unique_ptr<uint8_t[]> TakeBuffer(size_t size) {
  const bool spared =
      size == CiphertextBuffers::kOutCapacity || size == CiphertextBuffers::kInLarge;
  if (!spared || spares_gone) return std::make_unique_for_overwrite<uint8_t[]>(size);
  return SpareList(size).Take();
}

void GiveBackBuffer(std::unique_ptr<uint8_t[]> b, size_t size) {
  const bool spared =
      size == CiphertextBuffers::kOutCapacity || size == CiphertextBuffers::kInLarge;
  if (b && spared && !spares_gone) SpareList(size).GiveBack(std::move(b));
}

}  // namespace

// ---- input ------------------------------------------------------------------

void CiphertextBuffers::PrepareIn(size_t capacity) {
  if (in_ && in_bytes() > capacity) capacity = in_capacity_;  // shrinks only when what waits fits
  if (in_ && capacity == in_capacity_) {
    if (in_start_ == in_end_) {
      in_start_ = in_end_ = 0;
    } else if (in_end_ == in_capacity_ && in_start_ > 0) {
      memmove(in_.get(), in_.get() + in_start_, in_bytes());
      in_end_ -= in_start_;
      in_start_ = 0;
    }
    return;
  }
  std::unique_ptr<uint8_t[]> fresh = TakeBuffer(capacity);
  const size_t queued = in_bytes();
  if (queued > 0) memcpy(fresh.get(), in_.get() + in_start_, queued);
  GiveBackBuffer(std::move(in_), in_capacity_);
  in_ = std::move(fresh);
  in_capacity_ = capacity;
  in_start_ = 0;
  in_end_ = queued;
}

bool CiphertextBuffers::ReleaseEmptyInput() {
  if (!in_ || in_bytes() > 0) return false;
  GiveBackBuffer(std::move(in_), in_capacity_);
  in_capacity_ = in_start_ = in_end_ = 0;
  in_next_capacity_ = kInSmall;
  return true;
}

std::span<uint8_t> CiphertextBuffers::RecvSpace() {
  PrepareIn(in_next_capacity_);
  last_recv_space_ = in_capacity_ - in_end_;
  return {in_.get() + in_end_, last_recv_space_};
}

void CiphertextBuffers::Received(size_t n) {
  in_end_ += n;
  // A receive that filled its space: more is coming, take it in larger
  // steps. One well short of a record: the burst is over, back to small.
  if (n == last_recv_space_) {
    in_next_capacity_ = kInLarge;
  } else if (n < kBurstOver) {
    in_next_capacity_ = kInSmall;
  }
}

size_t CiphertextBuffers::Feed(std::span<const uint8_t> bytes) {
  size_t capacity = std::max(in_next_capacity_, in_capacity_);
  if (in_bytes() + bytes.size() > capacity) capacity = kInLarge;
  PrepareIn(capacity);
  if (in_end_ + bytes.size() > in_capacity_ && in_start_ > 0) {
    memmove(in_.get(), in_.get() + in_start_, in_bytes());
    in_end_ -= in_start_;
    in_start_ = 0;
  }
  const size_t n = std::min(bytes.size(), in_capacity_ - in_end_);
  if (n > 0) memcpy(in_.get() + in_end_, bytes.data(), n);
  in_end_ += n;
  return n;
}

size_t CiphertextBuffers::Read(uint8_t* into, size_t len) {
  // The queue's offsets are not reset when it empties: a receive may be in
  // flight into the space after in_end_.
  const size_t n = std::min(len, in_bytes());
  if (n > 0) memcpy(into, in_.get() + in_start_, n);
  in_start_ += n;
  return n;
}

// ---- output -----------------------------------------------------------------

size_t CiphertextBuffers::Write(const uint8_t* from, size_t len) {
  if (!out_) {
    out_ = TakeBuffer(kOutCapacity);
    out_start_ = out_end_ = 0;
  }
  const size_t n = std::min(len, OutRoom());
  if (n > 0) memcpy(out_.get() + out_end_, from, n);
  out_end_ += n;
  return n;
}

void CiphertextBuffers::Consume(size_t n) {
  out_start_ += std::min(n, out_bytes());
  if (out_start_ == out_end_) {
    GiveBackBuffer(std::move(out_), kOutCapacity);
    out_start_ = out_end_ = 0;
    return;
  }
  // A short send left a tail: move it to the front when the room behind it
  // is down to a quarter (the view of it was given up by this call).
  if (out_start_ > 0 && OutRoom() < kOutCapacity / 4) {
    memmove(out_.get(), out_.get() + out_start_, out_bytes());
    out_end_ -= out_start_;
    out_start_ = 0;
  }
}

// ---- the BIO ----------------------------------------------------------------

int CiphertextBuffers::BioRead(BIO* bio, char* into, size_t len, size_t* done) {
  auto* self = static_cast<CiphertextBuffers*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  *done = self->Read(reinterpret_cast<uint8_t*>(into), len);
  if (*done > 0) return 1;
  // Nothing queued: "retry later" until the peer's end was fed, then EOF
  // (no retry flag), which the SSL reports as truncation unless a
  // close_notify came first.
  if (!self->in_eof_ && len > 0) BIO_set_retry_read(bio);
  return 0;
}

int CiphertextBuffers::BioWrite(BIO* bio, const char* from, size_t len, size_t* done) {
  auto* self = static_cast<CiphertextBuffers*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  *done = self->Write(reinterpret_cast<const uint8_t*>(from), len);
  if (*done > 0 || len == 0) return 1;
  BIO_set_retry_write(bio);  // full: the caller sends, then the SSL retries
  return 0;
}

long CiphertextBuffers::BioCtrl(BIO* bio, int cmd, long num, void* /*ptr*/) {
  auto* self = static_cast<CiphertextBuffers*>(BIO_get_data(bio));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
      return 1;
    case BIO_CTRL_PENDING:
      return static_cast<long>(self->in_bytes());
    case BIO_CTRL_WPENDING:
      return static_cast<long>(self->out_bytes());
    case BIO_CTRL_EOF:
      return self->in_eof_ && self->in_bytes() == 0 ? 1 : 0;
    case BIO_CTRL_GET_CLOSE:
      return BIO_get_shutdown(bio);
    case BIO_CTRL_SET_CLOSE:
      BIO_set_shutdown(bio, static_cast<int>(num));
      return 1;
    default:
      return 0;
  }
}

int CiphertextBuffers::BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* CiphertextBuffers::Method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "egressd ciphertext");
    if (!m) return static_cast<BIO_METHOD*>(nullptr);
    BIO_meth_set_read_ex(m, BioRead);
    BIO_meth_set_write_ex(m, BioWrite);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

BIO* CiphertextBuffers::NewBio(CiphertextBuffers* buffers) {
  const BIO_METHOD* method = Method();
  if (!method) return nullptr;
  BIO* bio = BIO_new(method);
  if (bio) BIO_set_data(bio, buffers);
  return bio;
}

}  // namespace egressd::tls
