// The ciphertext between an SSL object and a socket: two byte queues in
// memory, and the BIO through which the SSL reads the one and appends to the
// other. The socket receives straight into the input queue and sends straight
// from the output queue, so each byte is copied once on either side of the
// SSL (into its record buffer, out of it), never through a ring of OpenSSL's.
//
// Both queues are allocated when first needed and sized to need:
//   in   kInSmall bytes; a receive that fills it makes the next one
//        kInLarge (a bulk transfer: several records per system call), and
//        one of less than kBurstOver (half a record) makes it small again. Memory moves
//        only in RecvSpace/Feed, never under a receive in flight; a parked
//        stream gives the empty queue back (ReleaseEmptyInput).
//   out  kOutCapacity bytes, freed whenever everything in it was sent, so
//        a quiet stream holds none. Bytes move only when consumed, never
//        under a send in flight.
// Large buffers given back go to a short per-thread list of spares, which
// the next one taken comes from: a bulk transfer empties its output at
// every send, and must not pay for malloc and fresh pages each time.
#pragma once

#include <openssl/bio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace egressd::tls {

class CiphertextBuffers {
 public:
  // Small: what a quiet stream holds while its receive waits (requests,
  // small responses and handshake flights fit; a larger one fills it and
  // the next receive is large).
  static constexpr size_t kInSmall = 4 * 1024;
  static constexpr size_t kInLarge = 128 * 1024;
  // A receive of fewer bytes (half a record) ends a burst: back to small.
  static constexpr size_t kBurstOver = 8 * 1024;
  static constexpr size_t kOutCapacity = 192 * 1024;

  // A new BIO reading from and writing to `buffers`, which must outlive it
  // (it does not own them). nullptr when OpenSSL has no memory.
  static BIO* NewBio(CiphertextBuffers* buffers);

  // ---- input: what the peer sent, not yet read by the SSL ----
  // Room for the next receive (empty: the queue is full). Call it only while
  // no receive into a previous RecvSpace is in flight.
  std::span<uint8_t> RecvSpace();
  // `n` bytes were received into the last RecvSpace.
  void Received(size_t n);
  // Copies what fits (growing to kInLarge); returns the bytes taken. Not
  // while a receive is in flight either.
  size_t Feed(std::span<const uint8_t> bytes);
  void FeedEof() { in_eof_ = true; }
  size_t in_bytes() const { return in_end_ - in_start_; }
  // Gives the input queue back when nothing waits in it (a quiet stream:
  // the next RecvSpace or Feed takes a small one again). Not while a
  // receive is in flight. Returns whether it was given back.
  bool ReleaseEmptyInput();

  // ---- output: what the SSL wrote, not yet sent ----
  std::span<const uint8_t> Pending() const {
    return {out_.get() + out_start_, out_end_ - out_start_};
  }
  size_t out_bytes() const { return out_end_ - out_start_; }
  size_t OutRoom() const { return kOutCapacity - out_end_; }
  void Consume(size_t n);

  // Bytes allocated now (tests).
  size_t allocated() const { return (in_ ? in_capacity_ : 0) + (out_ ? kOutCapacity : 0); }

 private:
  // The BIO's ends of the queues: the SSL reads and writes through these.
  size_t Read(uint8_t* into, size_t len);
  size_t Write(const uint8_t* from, size_t len);  // 0: no room
  static int BioRead(BIO* bio, char* into, size_t len, size_t* done);
  static int BioWrite(BIO* bio, const char* from, size_t len, size_t* done);
  static long BioCtrl(BIO* bio, int cmd, long num, void* ptr);
  static int BioCreate(BIO* bio);
  static const BIO_METHOD* Method();

  // Gives the input `capacity` bytes (or keeps its size while what is queued
  // would not fit), and moves what is queued to the front when the queue
  // reaches the end or is empty.
  void PrepareIn(size_t capacity);

  std::unique_ptr<uint8_t[]> in_;
  size_t in_capacity_ = 0;
  size_t in_start_ = 0;
  size_t in_end_ = 0;
  size_t in_next_capacity_ = kInSmall;
  size_t last_recv_space_ = 0;
  bool in_eof_ = false;

  std::unique_ptr<uint8_t[]> out_;
  size_t out_start_ = 0;
  size_t out_end_ = 0;
};

}  // namespace egressd::tls
