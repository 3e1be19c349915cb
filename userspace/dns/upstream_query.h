// One query to the upstream resolver, made hard to spoof (RFC 5452): a
// random id from the kernel's CSPRNG and a random source port (a socket of
// its own, given an ephemeral port by the kernel, connected to the upstream
// so datagrams from any other address or port never reach it). An answer is
// accepted only when its id and question are the query's; anything else that
// arrives is dropped and counted, and the query keeps waiting.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/common/unique_fd.h"

namespace egressd::dns {

// A uniformly random 16-bit query id (getrandom).
StatusOr<uint16_t> RandomQueryId();

// Whether `answer` answers `query`: QR set, the same id, one question, and
// the same question (name compared without regard to ASCII case, type and
// class exactly).
bool AnswerMatches(std::span<const uint8_t> query, std::span<const uint8_t> answer);

class UpstreamQuery {
 public:
  // Gives `query` (a message with one question) a random id and sends it
  // from a socket of its own.
  static StatusOr<UpstreamQuery> Send(const sockaddr_storage& upstream, std::vector<uint8_t> query);

  int fd() const { return fd_.get(); }
  uint16_t id() const { return static_cast<uint16_t>(query_[0] << 8 | query_[1]); }

  // Reads what has arrived (non-blocking): the matching answer, once;
  // nullopt while there is none. Mismatched datagrams add to *mismatched.
  std::optional<std::vector<uint8_t>> Receive(uint64_t* mismatched);
  // The errno of the last failed read other than "nothing yet", e.g.
  // ECONNREFUSED when the upstream's port is closed (an ICMP port
  // unreachable reached the socket); 0 when none.
  int error() const { return error_; }

 private:
  UniqueFd fd_;
  sockaddr_storage upstream_{};
  std::vector<uint8_t> query_;
  int error_ = 0;
};

}  // namespace egressd::dns
