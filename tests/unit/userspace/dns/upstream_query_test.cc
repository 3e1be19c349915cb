#include "userspace/dns/upstream_query.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "userspace/common/unique_fd.h"
#include "userspace/protocol/dns_message.h"

namespace egressd::dns {
namespace {

std::vector<uint8_t> Query(uint16_t id, const char* name,
                           protocol::DnsType type = protocol::DnsType::kA) {
  return *protocol::BuildDnsQuery(id, name, type);
}

// The upstream's answer to `query`: QR and RA set, one A record.
std::vector<uint8_t> AnswerTo(std::vector<uint8_t> query) {
  query[2] |= 0x80;
  query[3] = 0x80;
  query[7] = 1;  // ANCOUNT
  const uint8_t record[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 1};
  query.insert(query.end(), std::begin(record), std::end(record));
  return query;
}

TEST(AnswerMatches, TheAnswerToTheQuery) {
  auto query = Query(0x1234, "example.com");
  EXPECT_TRUE(AnswerMatches(query, AnswerTo(query)));
  // Name case may differ (0x20 randomisation by resolvers); nothing else.
  auto upper = AnswerTo(query);
  upper[13] = 'E';
  EXPECT_TRUE(AnswerMatches(query, upper));
}

TEST(AnswerMatches, RefusesAnotherIdQuestionOrAQuery) {
  auto query = Query(0x1234, "example.com");
  EXPECT_FALSE(AnswerMatches(query, AnswerTo(Query(0x1235, "example.com"))));  // id
  EXPECT_FALSE(AnswerMatches(query, AnswerTo(Query(0x1234, "example.org"))));  // name
  EXPECT_FALSE(AnswerMatches(query, AnswerTo(Query(0x1234, "example.co"))));   // shorter name
  EXPECT_FALSE(AnswerMatches(query, AnswerTo(Query(0x1234, "www.example.com"))));
  EXPECT_FALSE(
      AnswerMatches(query, AnswerTo(Query(0x1234, "example.com", protocol::DnsType::kAAAA))));
  auto other_class = AnswerTo(query);
  other_class[12 + 13 + 3] = 3;  // CLASS CH
  EXPECT_FALSE(AnswerMatches(query, other_class));
  EXPECT_FALSE(AnswerMatches(query, query));  // QR clear: not a response
  auto no_question = AnswerTo(query);
  no_question[5] = 0;  // QDCOUNT 0
  EXPECT_FALSE(AnswerMatches(query, no_question));
  auto compressed = AnswerTo(query);
  compressed[12] = 0xc0;  // a pointer where the question name starts
  EXPECT_FALSE(AnswerMatches(query, compressed));
  auto cut = AnswerTo(query);
  cut.resize(20);
  EXPECT_FALSE(AnswerMatches(query, cut));
  EXPECT_FALSE(AnswerMatches(query, std::vector<uint8_t>(5)));
}

TEST(UpstreamQuery, AClosedUpstreamPortIsReportedAsRefused) {
  // A loopback UDP port that was just closed: the kernel answers with ICMP
  // port unreachable, which the query's connected socket reads as ECONNREFUSED.
  sockaddr_storage upstream{};
  auto& in = reinterpret_cast<sockaddr_in&>(upstream);
  {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof(in)), 0);
    socklen_t len = sizeof(in);
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len), 0);
    close(fd);
  }
  auto q = UpstreamQuery::Send(upstream, Query(1, "refused.example"));
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  pollfd p{q->fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  uint64_t mismatched = 0;
  EXPECT_FALSE(q->Receive(&mismatched));
  EXPECT_EQ(q->error(), ECONNREFUSED);
  EXPECT_EQ(mismatched, 0u);
}

// A UDP socket on loopback standing in for the upstream.
struct FakeUpstream {
  UniqueFd fd{socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  sockaddr_storage addr{};
  FakeUpstream() {
    auto& in = reinterpret_cast<sockaddr_in&>(addr);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&in), sizeof(in)), 0);
    socklen_t len = sizeof(in);
    EXPECT_EQ(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&in), &len), 0);
  }
  // The next query that arrives, and where it came from.
  std::vector<uint8_t> Next(sockaddr_in* from) {
    uint8_t buf[512];
    socklen_t len = sizeof(*from);
    ssize_t n = recvfrom(fd.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(from), &len);
    return n > 0 ? std::vector<uint8_t>(buf, buf + n) : std::vector<uint8_t>();
  }
  void Reply(const std::vector<uint8_t>& message, const sockaddr_in& to) {
    sendto(fd.get(), message.data(), message.size(), 0, reinterpret_cast<const sockaddr*>(&to),
           sizeof(to));
  }
};

std::optional<UpstreamQuery::Answer> WaitForAnswer(UpstreamQuery& q, uint64_t* mismatched) {
  pollfd p{q.fd(), POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return std::nullopt;
  return q.ReceiveAnswer(mismatched);
}

TEST(UpstreamQuery, QueriesSentTogetherShareASocketAndEachGetsItsOwnAnswer) {
  FakeUpstream upstream;
  std::vector<std::vector<uint8_t>> queries;
  queries.push_back(Query(0, "both.example", protocol::DnsType::kA));
  queries.push_back(Query(0, "both.example", protocol::DnsType::kAAAA));
  auto q = UpstreamQuery::SendAll(upstream.addr, std::move(queries));
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  sockaddr_in from_a{}, from_aaaa{};
  auto a = upstream.Next(&from_a);
  auto aaaa = upstream.Next(&from_aaaa);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(aaaa.empty());
  EXPECT_EQ(from_a.sin_port, from_aaaa.sin_port);  // one socket
  EXPECT_EQ(a[0] << 8 | a[1], q->id(0));           // each its own id
  EXPECT_EQ(aaaa[0] << 8 | aaaa[1], q->id(1));

  // Answered in the other order: each answer goes with its own query; a
  // second copy of an answer, and an answer to nothing asked, do not count.
  uint64_t mismatched = 0;
  upstream.Reply(AnswerTo(aaaa), from_aaaa);
  auto first = WaitForAnswer(*q, &mismatched);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->index, 1u);
  EXPECT_EQ(first->message, AnswerTo(aaaa));
  upstream.Reply(AnswerTo(aaaa), from_aaaa);
  upstream.Reply(AnswerTo(Query(q->id(0), "other.example")), from_a);
  // The A query's id with the AAAA question (answered, but it would be the
  // A query's only by its id).
  upstream.Reply(AnswerTo(Query(q->id(0), "both.example", protocol::DnsType::kAAAA)), from_a);
  upstream.Reply(AnswerTo(a), from_a);
  auto second = WaitForAnswer(*q, &mismatched);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->index, 0u);
  EXPECT_EQ(second->message, AnswerTo(a));
  EXPECT_EQ(mismatched, 3u);
}

// The receive buffer is not in static TLS, which every thread of the
// process carries on its stack, a library's small-stack threads too
// (civetweb's, serving metrics, have 100 KiB): a thread with a 48 KiB stack
// can be created and can read an answer.
TEST(UpstreamQuery, AThreadWithASmallStackCanReadAnswers) {
  FakeUpstream upstream;
  auto q = UpstreamQuery::Send(upstream.addr, Query(0, "small-stack.example"));
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  sockaddr_in from{};
  auto asked = upstream.Next(&from);
  ASSERT_FALSE(asked.empty());
  upstream.Reply(AnswerTo(asked), from);
  struct Job {
    UpstreamQuery* query;
    bool answered = false;
  } job{&*q};
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 48 * 1024), 0);
  pthread_t thread;
  const int created = pthread_create(
      &thread, &attr,
      [](void* arg) -> void* {
        auto* job = static_cast<Job*>(arg);
        uint64_t mismatched = 0;
        job->answered = WaitForAnswer(*job->query, &mismatched).has_value();
        return nullptr;
      },
      &job);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(created, 0) << strerror(created) << ": static TLS larger than a 48 KiB stack";
  pthread_join(thread, nullptr);
  EXPECT_TRUE(job.answered);
}

TEST(UpstreamQuery, RefusesNoQueriesOrTooMany) {
  FakeUpstream upstream;
  EXPECT_FALSE(UpstreamQuery::SendAll(upstream.addr, {}).ok());
  std::vector<std::vector<uint8_t>> many(5, Query(0, "many.example"));
  EXPECT_FALSE(UpstreamQuery::SendAll(upstream.addr, std::move(many)).ok());
}

TEST(RandomQueryIds, NotACounter) {
  uint16_t ids[65];
  ASSERT_TRUE(RandomQueryIds(ids).ok());
  std::set<uint16_t> seen(std::begin(ids), std::end(ids));
  bool sequential = true;
  for (size_t i = 1; i < std::size(ids); ++i)
    sequential = sequential && ids[i] == static_cast<uint16_t>(ids[i - 1] + 1);
  EXPECT_FALSE(sequential);
  EXPECT_GT(seen.size(), 50u);  // 65 draws of 16 bits: a handful of repeats at most
}

}  // namespace
}  // namespace egressd::dns
