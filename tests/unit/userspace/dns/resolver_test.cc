// The resolver against a real upstream on loopback: a UDP responder thread in
// the test that answers A queries with 127.0.0.1 (AAAA with no record), and
// can ignore the first attempt of every question (or of AAAA questions only)
// to make the resolver retry. It notes each query's type and source port.
#include "userspace/dns/resolver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "userspace/common/unique_fd.h"

namespace egressd::dns {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Asked {
  bool is_a;
  uint16_t port;
};

class Responder {
 public:
  explicit Responder(bool ignore_first_attempt, bool only_aaaa = false)
      : ignore_first_(ignore_first_attempt), only_aaaa_(only_aaaa) {
    fd_.Reset(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    auto& in = reinterpret_cast<sockaddr_in&>(addr_);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_.get(), reinterpret_cast<sockaddr*>(&in), sizeof(in)), 0);
    socklen_t len = sizeof(in);
    EXPECT_EQ(getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&in), &len), 0);
    thread_ = std::thread([this] { Run(); });
  }
  ~Responder() {
    stop_ = true;
    thread_.join();
  }
  const sockaddr_storage& addr() const { return addr_; }
  int queries() const { return queries_; }
  int answered() const { return answered_; }
  std::vector<Asked> asked() {
    std::lock_guard lock(mu_);
    return asked_;
  }

 private:
  void Run() {
    std::set<std::vector<uint8_t>> seen;  // questions asked once already
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (poll(&p, 1, 50) != 1) continue;
      uint8_t buf[512];
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      ssize_t n = recvfrom(fd_.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n < 17) continue;
      std::vector<uint8_t> reply(buf, buf + n);  // header and question (no EDNS)
      std::vector<uint8_t> question(buf + 12, buf + n);
      const bool is_a = buf[n - 4] == 0 && buf[n - 3] == 1;
      {
        std::lock_guard lock(mu_);
        asked_.push_back({is_a, ntohs(peer.sin_port)});
      }
      ++queries_;
      if (ignore_first_ && !(only_aaaa_ && is_a) && seen.insert(question).second) continue;
      reply[2] |= 0x80;  // QR
      reply[3] = 0x80;   // RA, NOERROR
      if (is_a) {
        reply[7] = 1;  // ANCOUNT
        const uint8_t record[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
        reply.insert(reply.end(), std::begin(record), std::end(record));
      }
      sendto(fd_.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer), len);
      ++answered_;
    }
  }

  const bool ignore_first_;
  const bool only_aaaa_;
  UniqueFd fd_;
  std::mutex mu_;
  std::vector<Asked> asked_;
  sockaddr_storage addr_{};
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

// Collects the callbacks' results, and the threads they ran on.
struct Answers {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ResolveResult> results;
  std::vector<std::thread::id> threads;

  Resolver::Callback Callback() {
    return [this](const ResolveResult& r) {
      std::lock_guard lock(mu);
      results.push_back(r);
      threads.push_back(std::this_thread::get_id());
      cv.notify_all();
    };
  }
  size_t count() {
    std::lock_guard lock(mu);
    return results.size();
  }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return results.size() >= n; });
  }
};

// A loopback UDP port nothing listens on any more (ICMP port unreachable).
sockaddr_storage ClosedUpstream() {
  Responder gone(false);
  return gone.addr();
}

Resolver::Options OptionsFor(const Responder& upstream, std::chrono::milliseconds timeout) {
  Resolver::Options options;
  options.upstream = upstream.addr();
  options.timeout = timeout;
  return options;
}

TEST(Resolver, AnswersThenServesFromTheCache) {
  Responder upstream(false);
  Resolver resolver(OptionsFor(upstream, 2000ms));
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  EXPECT_FALSE(resolver.Lookup("a.example", answers.Callback()));
  ASSERT_TRUE(answers.WaitFor(1, 5s));
  ASSERT_TRUE(answers.results[0].ok()) << answers.results[0].error;
  ASSERT_EQ(answers.results[0].addrs.size(), 1u);
  EXPECT_EQ(answers.results[0].addrs[0].ToString(), "127.0.0.1");
  EXPECT_EQ(upstream.queries(), 2);  // A and AAAA

  auto cached = resolver.Lookup("a.example", [](const ResolveResult&) { ADD_FAILURE(); });
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->addrs, answers.results[0].addrs);
  EXPECT_EQ(upstream.queries(), 2);
}

TEST(Resolver, ManyLookupsAtOnceAllComplete) {
  Responder upstream(false);
  Resolver resolver(OptionsFor(upstream, 2000ms));
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  constexpr int kNames = 100;  // fewer than the lookups allowed in flight
  for (int i = 0; i < kNames; ++i)
    EXPECT_FALSE(resolver.Lookup("n" + std::to_string(i) + ".example", answers.Callback()));
  ASSERT_TRUE(answers.WaitFor(kNames, 10s));
  for (const auto& r : answers.results) EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(upstream.queries(), 2 * kNames);
}

// A lookup made while the resolver's thread sleeps (up to a second when it
// has nothing in flight) is retried on time: its deadline, shorter than that
// sleep, wakes the thread.
TEST(Resolver, RetriesOnTimeWhileTheThreadSleeps) {
  Responder upstream(/*ignore_first_attempt=*/true);
  Resolver resolver(OptionsFor(upstream, 100ms));
  ASSERT_TRUE(resolver.Start().ok());
  std::this_thread::sleep_for(50ms);  // let the thread go to sleep with nothing in flight
  Answers answers;
  const auto start = Clock::now();
  EXPECT_FALSE(resolver.Lookup("retry.example", answers.Callback()));
  ASSERT_TRUE(answers.WaitFor(1, 5s));
  const auto took = Clock::now() - start;
  ASSERT_TRUE(answers.results[0].ok()) << answers.results[0].error;
  EXPECT_EQ(upstream.queries(), 4);  // two attempts of A and AAAA
  EXPECT_LT(took, 600ms) << "the retry waited for the thread's own wake-up";
}

// Both questions of an attempt leave from one socket (one random source
// port); a retry asks again, from a socket of its own, only what is missing.
TEST(Resolver, AnAttemptsQuestionsShareASocketAndARetryAsksOnlyWhatIsMissing) {
  Responder upstream(/*ignore_first_attempt=*/true, /*only_aaaa=*/true);
  Resolver resolver(OptionsFor(upstream, 100ms));
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  EXPECT_FALSE(resolver.Lookup("half.example", answers.Callback()));
  ASSERT_TRUE(answers.WaitFor(1, 5s));
  ASSERT_TRUE(answers.results[0].ok()) << answers.results[0].error;
  auto asked = upstream.asked();
  ASSERT_EQ(asked.size(), 3u);  // A and AAAA, then AAAA again
  EXPECT_NE(asked[0].is_a, asked[1].is_a);
  EXPECT_EQ(asked[0].port, asked[1].port);
  EXPECT_FALSE(asked[2].is_a);
  EXPECT_NE(asked[2].port, asked[0].port);  // its own socket (1 in ~28,000: the same port)
}

// A closed upstream port (ICMP port unreachable): the lookup fails at once
// (through the callback, as the socket's error arrives; or returned by
// Lookup when the refusal came back while its questions were being sent),
// and the failure is not cached.
TEST(Resolver, ARefusingUpstreamFailsTheLookupAtOnce) {
  Resolver::Options options;
  options.upstream = ClosedUpstream();
  options.timeout = 10s;
  Resolver resolver(options);
  ASSERT_TRUE(resolver.Start().ok());
  for (int i = 0; i < 2; ++i) {  // the second: not answered from a cache
    Answers answers;
    const auto start = Clock::now();
    auto now = resolver.Lookup("refused.example", answers.Callback());
    ResolveResult result;
    if (now) {
      result = *now;
    } else {
      ASSERT_TRUE(answers.WaitFor(1, 5s));
      result = answers.results[0];
    }
    EXPECT_NE(result.error.find("refused the query"), std::string::npos) << result.error;
    EXPECT_LT(Clock::now() - start, 2s);
  }
}

TEST(Resolver, TimesOutWhenTheUpstreamNeverAnswers) {
  Responder upstream(/*ignore_first_attempt=*/true);
  Resolver::Options options = OptionsFor(upstream, 100ms);
  options.attempts = 1;
  Resolver resolver(options);
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  EXPECT_FALSE(resolver.Lookup("silent.example", answers.Callback()));
  ASSERT_TRUE(answers.WaitFor(1, 5s));
  EXPECT_EQ(answers.results[0].error, "timeout");
}

// Waits (as a proxy worker's ring would) until `fd` is readable or shut
// down; its poll events, 0 on a timeout.
short WaitOn(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) == 1 ? p.revents : 0;
}

bool IsOpen(int fd) {
  return fcntl(fd, F_GETFD) != -1;
}

// A caller that waits on the queries' socket itself (AnswerWatch) gets the
// answer from OnWatchDone, on its own thread: the resolver's thread is not
// involved. (Should the AAAA answer still be on its way through the
// kernel's loopback when the caller reads, the resolver's thread finishes
// the lookup: so three names, and at least one answered on this thread.)
TEST(Resolver, ACallerWaitingOnTheSocketGetsTheAnswerOnItsOwnThread) {
  Responder upstream(false);
  Resolver resolver(OptionsFor(upstream, 2000ms));
  ASSERT_TRUE(resolver.Start().ok());
  int on_this_thread = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "watched" + std::to_string(i) + ".example";
    Answers answers;
    Resolver::AnswerWatch watch;
    const int answered_before = upstream.answered();
    EXPECT_FALSE(resolver.Lookup(name, answers.Callback(), &watch));
    ASSERT_NE(watch.attempt, 0u);
    ASSERT_GE(watch.fd, 0);
    EXPECT_TRUE(WaitOn(watch.fd, 5s) & POLLIN);
    for (auto deadline = Clock::now() + 5s;
         upstream.answered() < answered_before + 2 && Clock::now() < deadline;)
      std::this_thread::sleep_for(1ms);  // both answers sent
    EXPECT_EQ(answers.count(), 0u) << "the resolver's thread read the answers";
    resolver.OnWatchDone(watch.attempt);
    ASSERT_TRUE(answers.WaitFor(1, 5s));
    ASSERT_TRUE(answers.results[0].ok()) << answers.results[0].error;
    EXPECT_EQ(answers.results[0].addrs[0].ToString(), "127.0.0.1");
    if (answers.threads[0] == std::this_thread::get_id()) on_this_thread++;
    resolver.OnWatchDone(watch.attempt);  // a second call for that attempt: nothing
    EXPECT_EQ(answers.count(), 1u);
    // Answered from the cache now: nothing to watch.
    Resolver::AnswerWatch none;
    EXPECT_TRUE(resolver.Lookup(name, answers.Callback(), &none));
    EXPECT_EQ(none.attempt, 0u);
  }
  EXPECT_GE(on_this_thread, 1);
}

// An answer that arrived in time but that its caller did not read before
// the deadline (a long completion batch) is used: no retry.
TEST(Resolver, AnAnswerTheCallerHasNotReadByTheDeadlineIsStillUsed) {
  Responder upstream(false);
  Resolver resolver(OptionsFor(upstream, 100ms));
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  Resolver::AnswerWatch watch;
  EXPECT_FALSE(resolver.Lookup("late-reader.example", answers.Callback(), &watch));
  ASSERT_TRUE(answers.WaitFor(1, 5s));  // the caller never read: the deadline did
  ASSERT_TRUE(answers.results[0].ok()) << answers.results[0].error;
  EXPECT_EQ(upstream.queries(), 2);  // not asked again
  EXPECT_TRUE(WaitOn(watch.fd, 5s) & POLLHUP);
  resolver.OnWatchDone(watch.attempt);
  EXPECT_FALSE(IsOpen(watch.fd));
}

// A refusing upstream (ICMP port unreachable on the watched socket): the
// caller's wait ends and OnWatchDone fails the lookup at once.
TEST(Resolver, ARefusalOnAWatchedSocketFailsTheLookup) {
  Resolver::Options options;
  options.upstream = ClosedUpstream();
  options.timeout = 5000ms;
  Resolver resolver(options);
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  Resolver::AnswerWatch watch;
  auto now = resolver.Lookup("refused-watched.example", answers.Callback(), &watch);
  if (now) {  // refused while the questions were sent: nothing to watch
    EXPECT_EQ(watch.attempt, 0u);
    EXPECT_NE(now->error.find("refused the query"), std::string::npos) << now->error;
    return;
  }
  ASSERT_NE(watch.attempt, 0u);
  EXPECT_TRUE(WaitOn(watch.fd, 3s) & (POLLERR | POLLIN));
  resolver.OnWatchDone(watch.attempt);
  ASSERT_EQ(answers.count(), 1u);
  EXPECT_NE(answers.results[0].error.find("refused the query"), std::string::npos)
      << answers.results[0].error;
}

// The caller's wait ends when the resolver gives up on the queries it
// waits for (here: retries them from a new socket after the first
// attempt's deadline): the socket is shut down, and stays open (its number
// not reused) until the caller says its wait is over.
TEST(Resolver, ACallersWaitEndsWhenItsQueriesAreRetriedAndTheSocketClosesAfterIt) {
  Responder upstream(/*ignore_first_attempt=*/true);
  Resolver resolver(OptionsFor(upstream, 300ms));
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  Resolver::AnswerWatch watch;
  EXPECT_FALSE(resolver.Lookup("retried.example", answers.Callback(), &watch));
  ASSERT_NE(watch.attempt, 0u);
  EXPECT_TRUE(WaitOn(watch.fd, 5s) & POLLHUP);
  ASSERT_TRUE(answers.WaitFor(1, 5s));  // the retry, answered on the resolver's thread
  ASSERT_TRUE(answers.results[0].ok()) << answers.results[0].error;
  EXPECT_NE(answers.threads[0], std::this_thread::get_id());
  EXPECT_TRUE(IsOpen(watch.fd));
  resolver.OnWatchDone(watch.attempt);
  EXPECT_FALSE(IsOpen(watch.fd));
  EXPECT_EQ(answers.count(), 1u);
}

// Half an answer read by the caller: the resolver's thread waits for the
// rest (here the AAAA question, asked again at the deadline).
TEST(Resolver, WhatTheCallerDidNotGetTheResolversThreadWaitsFor) {
  Responder upstream(/*ignore_first_attempt=*/true, /*only_aaaa=*/true);
  Resolver resolver(OptionsFor(upstream, 1000ms));
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  Resolver::AnswerWatch watch;
  EXPECT_FALSE(resolver.Lookup("half-watched.example", answers.Callback(), &watch));
  EXPECT_TRUE(WaitOn(watch.fd, 5s) & POLLIN);  // the A answer
  resolver.OnWatchDone(watch.attempt);
  EXPECT_EQ(answers.count(), 0u);
  ASSERT_TRUE(answers.WaitFor(1, 5s));
  ASSERT_TRUE(answers.results[0].ok()) << answers.results[0].error;
  EXPECT_EQ(answers.results[0].addrs[0].ToString(), "127.0.0.1");
  EXPECT_EQ(upstream.queries(), 3);  // A and AAAA, then AAAA again
}

// Stopping the resolver ends a caller's wait too (and fails the lookup).
TEST(Resolver, StoppingEndsACallersWait) {
  Responder upstream(/*ignore_first_attempt=*/true);
  Resolver resolver(OptionsFor(upstream, 5000ms));
  ASSERT_TRUE(resolver.Start().ok());
  Answers answers;
  Resolver::AnswerWatch watch;
  EXPECT_FALSE(resolver.Lookup("stopped.example", answers.Callback(), &watch));
  std::thread stopper([&] { resolver.Stop(); });
  EXPECT_TRUE(WaitOn(watch.fd, 3s) & POLLHUP);
  stopper.join();
  ASSERT_EQ(answers.count(), 1u);
  EXPECT_EQ(answers.results[0].error, "resolver stopped");
  resolver.OnWatchDone(watch.attempt);
  EXPECT_FALSE(IsOpen(watch.fd));
}

}  // namespace
}  // namespace egressd::dns
