// Queries to the upstream resolver, made hard to spoof (RFC 5452): each a
// random id from the kernel's CSPRNG, sent from a random source port (a
// socket of their own, given an ephemeral port by the kernel, connected to
// the upstream so datagrams from any other address or port never reach it).
// The questions of one lookup (A and AAAA) share that socket, as glibc's
// resolver does, and leave in one sendmmsg. An answer is accepted only when
// its id and question are those of a query still waiting; anything else that
// arrives is dropped and counted, and the queries keep waiting.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/common/unique_fd.h"

namespace egressd::dns {

// Fills `ids` with uniformly random 16-bit query ids (one getrandom).
Status RandomQueryIds(std::span<uint16_t> ids);

// Whether `answer` answers `query`: QR set, the same id, one question, and
// the same question (name compared without regard to ASCII case, type and
// class exactly).
bool AnswerMatches(std::span<const uint8_t> query, std::span<const uint8_t> answer);

class UpstreamQuery {
 public:
  // Gives `query` (a message with one question) a random id and sends it
  // from a socket of its own.
  static StatusOr<UpstreamQuery> Send(const sockaddr_storage& upstream, std::vector<uint8_t> query);
  // The same for several queries (each with one question and an id of its
  // own), sharing one socket. A result with error() ECONNREFUSED: the
  // upstream refused them as they were sent.
  static StatusOr<UpstreamQuery> SendAll(const sockaddr_storage& upstream,
                                         std::vector<std::vector<uint8_t>> queries);

  int fd() const { return fd_.get(); }
  uint16_t id(size_t index = 0) const {
    return static_cast<uint16_t>(queries_[index][0] << 8 | queries_[index][1]);
  }

  struct Answer {
    size_t index;  // of the query it answers, in the order sent
    std::vector<uint8_t> message;
  };
  // Reads what has arrived (non-blocking): the next answer to a query not
  // answered yet; nullopt while there is none. Mismatched datagrams (and a
  // second answer to the same query) add to *mismatched.
  std::optional<Answer> ReceiveAnswer(uint64_t* mismatched);
  // ReceiveAnswer's message, for a single query.
  std::optional<std::vector<uint8_t>> Receive(uint64_t* mismatched);
  // The errno of the last failed read other than "nothing yet", e.g.
  // ECONNREFUSED when the upstream's port is closed (an ICMP port
  // unreachable reached the socket); 0 when none.
  int error() const { return error_; }

 private:
  UniqueFd fd_;
  sockaddr_storage upstream_{};
  std::vector<std::vector<uint8_t>> queries_;
  std::vector<bool> answered_;
  int error_ = 0;
};

}  // namespace egressd::dns
