#include "userspace/dns/upstream_query.h"

#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

#include "userspace/dns/resolver.h"

namespace egressd::dns {
namespace {

constexpr size_t kHeaderBytes = 12;

// Offset just past the one question of a message, or 0 when it does not
// parse (uncompressed name: queries never compress their question).
size_t QuestionEnd(std::span<const uint8_t> msg) {
  size_t off = kHeaderBytes;
  while (off < msg.size()) {
    uint8_t len = msg[off];
    if (len == 0) return off + 1 + 4 <= msg.size() ? off + 1 + 4 : 0;  // root, TYPE, CLASS
    if (len > 63) return 0;  // a compression pointer or a reserved label type
    off += 1 + len;
  }
  return 0;
}

uint8_t Lower(uint8_t c) {
  return c >= 'A' && c <= 'Z' ? static_cast<uint8_t>(c - 'A' + 'a') : c;
}

bool SameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port && memcmp(&x.sin6_addr, &y.sin6_addr, 16) == 0;
}

}  // namespace

Status RandomQueryIds(std::span<uint16_t> ids) {
  if (getrandom(ids.data(), ids.size_bytes(), 0) != static_cast<ssize_t>(ids.size_bytes()))
    return EGRESSD_ERROR("getrandom: {}", strerror(errno));
  return {};
}

bool AnswerMatches(std::span<const uint8_t> query, std::span<const uint8_t> answer) {
  if (query.size() < kHeaderBytes || answer.size() < kHeaderBytes) return false;
  if (!(answer[2] & 0x80)) return false;                             // QR: a response
  if (answer[0] != query[0] || answer[1] != query[1]) return false;  // id
  if (answer[4] != 0 || answer[5] != 1) return false;                // QDCOUNT 1
  const size_t end = QuestionEnd(query);
  if (end == 0 || answer.size() < end || QuestionEnd(answer) != end) return false;
  for (size_t i = kHeaderBytes; i < end; ++i)
    if (Lower(answer[i]) != Lower(query[i])) return false;
  return true;
}

StatusOr<UpstreamQuery> UpstreamQuery::Send(const sockaddr_storage& upstream,
                                            std::vector<uint8_t> query) {
  std::vector<std::vector<uint8_t>> queries;
  queries.push_back(std::move(query));
  return SendAll(upstream, std::move(queries));
}

StatusOr<UpstreamQuery> UpstreamQuery::SendAll(const sockaddr_storage& upstream,
                                               std::vector<std::vector<uint8_t>> queries) {
  constexpr size_t kMaxQueries = 4;
  if (queries.empty() || queries.size() > kMaxQueries)
    return EGRESSD_ERROR("DNS: {} queries at once", queries.size());
  uint16_t ids[kMaxQueries];
  EGRESSD_RETURN_IF_ERROR(RandomQueryIds(std::span(ids, queries.size())));
  for (size_t i = 0; i < queries.size(); ++i) {
    if (queries[i].size() < kHeaderBytes) return EGRESSD_ERROR("DNS query too short");
    queries[i][0] = static_cast<uint8_t>(ids[i] >> 8);
    queries[i][1] = static_cast<uint8_t>(ids[i] & 0xff);
  }
  UpstreamQuery q;
  q.upstream_ = upstream;
  q.queries_ = std::move(queries);
  q.answered_.assign(q.queries_.size(), false);
  // Connecting an unbound socket gives it a random ephemeral port.
  q.fd_.Reset(socket(upstream.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  socklen_t len = upstream.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (!q.fd_.valid() ||
      connect(q.fd_.get(), reinterpret_cast<const sockaddr*>(&upstream), len) != 0)
    return EGRESSD_ERROR("DNS upstream {}: {}", FormatSocketAddress(upstream), strerror(errno));
  iovec iov[kMaxQueries];
  mmsghdr msgs[kMaxQueries]{};
  for (size_t i = 0; i < q.queries_.size(); ++i) {
    iov[i] = {q.queries_[i].data(), q.queries_[i].size()};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  const int n = static_cast<int>(q.queries_.size());
  int sent = sendmmsg(q.fd_.get(), msgs, static_cast<unsigned>(n), 0);
  if (sent < 1)
    return EGRESSD_ERROR("DNS upstream {}: send: {}", FormatSocketAddress(upstream),
                         strerror(errno));
  // sendmmsg stops at a query that fails and does not say why. On loopback a
  // closed port's ICMP error reaches the socket as the first query leaves,
  // and the second one's send takes it. The rest go one by one: a refusal
  // then shows as the next error on the socket (their own ICMP), or, when it
  // arrives between two sends, as this send's ECONNREFUSED (error()). Any
  // other failure leaves the rest unsent: the queries sent still get their
  // answers, and the caller's retry asks again for what is missing.
  for (int i = sent; i < n; ++i) {
    if (send(q.fd_.get(), q.queries_[i].data(), q.queries_[i].size(), 0) >= 0) continue;
    if (errno == ECONNREFUSED) q.error_ = errno;
    break;
  }
  return q;
}

std::optional<UpstreamQuery::Answer> UpstreamQuery::ReceiveAnswer(uint64_t* mismatched) {
  // The largest datagram, read into one buffer per thread (not a fresh,
  // zeroed 64 KiB per call); the answer is copied out. On the heap, made by
  // the first read: a thread_local array would be in every thread's static
  // TLS, which glibc carves out of each thread's stack (a library's thread
  // with a 100 KiB stack, civetweb's, was left ~35 KiB: ASan overflowed it).
  thread_local std::unique_ptr<std::array<uint8_t, 65536>> buffer;
  if (!buffer) buffer = std::make_unique<std::array<uint8_t, 65536>>();
  std::array<uint8_t, 65536>& buf = *buffer;
  for (int budget = 0; budget < 16; ++budget) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof(from);
    ssize_t n = recvfrom(fd_.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from),
                         &from_len);
    if (n < 0) {
      // Nothing more for now, or an ICMP error the caller may act on.
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) error_ = errno;
      return std::nullopt;
    }
    std::span<const uint8_t> got(buf.data(), static_cast<size_t>(n));
    if (SameAddress(from, upstream_)) {
      for (size_t i = 0; i < queries_.size(); ++i) {
        if (answered_[i] || !AnswerMatches(queries_[i], got)) continue;
        answered_[i] = true;
        return Answer{i, std::vector<uint8_t>(got.begin(), got.end())};
      }
    }
    ++*mismatched;
  }
  return std::nullopt;
}

std::optional<std::vector<uint8_t>> UpstreamQuery::Receive(uint64_t* mismatched) {
  auto answer = ReceiveAnswer(mismatched);
  if (!answer) return std::nullopt;
  return std::move(answer->message);
}

}  // namespace egressd::dns
