// egressd's own resolver: the only source of upstream addresses for names.
// A name the sandbox presents (SNI, Host) never picks the address; this does.
// A and AAAA queries go over UDP to the configured upstream (each with a
// random id, both from one random source port, accepting only the answers
// that match: upstream_query.h); answers are cached by TTL (bounded),
// failures briefly.
// The caller of Lookup sends the queries; one thread waits for the answers
// (epoll: a query's socket is watched from the moment it is sent, so a
// lookup wakes that thread only when its answer arrives, or when its
// deadline comes before the thread's next wake-up), retries and times out.
// A caller with an event loop of its own (a proxy worker's ring) can wait
// for a lookup's first answers itself (AnswerWatch): the answer then wakes
// only that caller, not the resolver's thread as well.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "policy/ip_address.h"
#include "userspace/common/status.h"
#include "userspace/dns/upstream_query.h"

namespace egressd::dns {

struct ResolveResult {
  std::vector<policy::IpAddress> addrs;  // empty when error is set
  std::string error;                     // "" on success, e.g. "NXDOMAIN", "timeout"
  bool ok() const { return error.empty(); }
};

class Resolver {
 public:
  using Callback = std::function<void(const ResolveResult&)>;
  struct Options {
    sockaddr_storage upstream{};
    std::chrono::milliseconds timeout{2000};  // per attempt
    int attempts = 2;
    size_t cache_entries = 4096;
    std::chrono::seconds max_ttl{300};
    std::chrono::seconds negative_ttl{5};
  };
  explicit Resolver(Options options);
  ~Resolver();
  Status Start();
  void Stop();

  // The socket of a lookup's first queries, for the caller to wait on.
  struct AnswerWatch {
    int fd = -1;           // readable (or shut down) once there is something to read
    uint64_t attempt = 0;  // 0: nothing to wait for (no queries sent by this call)
  };

  // An answer known at once (cached, or the upstream refused the queries as
  // they were sent) is returned and `callback` is not called.
  // Otherwise returns nullopt and calls `callback` exactly once, later, on the
  // resolver thread or in OnWatchDone (keep it short: post to your own thread).
  // With `watch`: when this call sent queries, *watch names their socket and
  // the resolver's thread does not wait for their answers: the caller waits
  // until `watch->fd` is readable or shut down (the resolver shuts it down
  // when it gives up on those queries, so the wait always ends; it closes
  // the socket only after OnWatchDone) and then calls OnWatchDone, once.
  std::optional<ResolveResult> Lookup(const std::string& name, Callback callback,
                                      AnswerWatch* watch = nullptr);
  // The caller's wait for `attempt` ended (from any thread): the answers
  // that arrived are read (completing the lookup, or not yet); the resolver's
  // thread waits for the rest. Nothing when that attempt is over already.
  // Callers whose waits can outlive the resolver's thread (proxy workers)
  // are stopped after Stop(): Stop shuts every watched socket down, so their
  // waits end; sockets whose OnWatchDone never came are closed with the
  // resolver.
  void OnWatchDone(uint64_t attempt);

  // Datagrams on a query's socket that were not its answer (spoofing attempts).
  uint64_t upstream_mismatched() const { return upstream_mismatched_; }

 private:
  struct Pending {
    std::string name;
    std::vector<Callback> waiters;
    UpstreamQuery query;             // the attempt in flight: the types not done yet
    std::vector<bool> query_is_a;    // per query of that attempt, in the order sent
    uint64_t attempt = 0;            // that attempt's number (0: none in flight)
    bool watched_by_caller = false;  // Lookup's caller waits on its socket (AnswerWatch)
    bool done_a = false, done_aaaa = false;
    int attempts_left = 0;
    std::chrono::steady_clock::time_point deadline;
    std::vector<policy::IpAddress> addrs;
    uint32_t min_ttl = UINT32_MAX;
    std::string error;
    // The failure says nothing about the name (a timeout, a refusing
    // upstream): not kept in the negative cache.
    bool transient = false;
  };
  struct CacheEntry {
    ResolveResult result;
    std::chrono::steady_clock::time_point expires;
    std::list<std::string>::iterator lru;
  };
  void Run();
  // Sends the attempt's queries (watched by the thread unless
  // `caller_watches`); the errno when the upstream refused them at once
  // (then OnRefused's to call), else 0.
  int SendQueries(Pending& p, bool caller_watches);
  // Reads the answers that arrived for p's attempt; whether p is complete
  // (it is then gone).
  bool ReadAnswers(Pending& p);
  // Whether `p` is complete after this answer (it is then gone).
  bool OnAnswer(Pending& p, bool is_a, std::span<const uint8_t> answer);
  // The upstream refused the queries (ICMP port unreachable: `err`): the
  // types in flight are done, with no answer.
  void OnRefused(Pending& p, int err);
  std::string RefusedError(int err) const;
  void Complete(const std::string& name);
  // A sent attempt's socket, watched by the thread (with mu_ held).
  void Watch(const Pending& p);
  // Replaces `p`'s attempt by none: no longer watched, its socket closed
  // (shut down first when a caller waits on it: that ends the wait) (mu_
  // held).
  void Drop(Pending& p);
  void Store(const std::string& name, const ResolveResult& r, std::chrono::seconds ttl);

  Options options_;
  int wake_fd_ = -1;   // Stop, or a deadline earlier than the thread's wake-up
  int epoll_fd_ = -1;  // wake_fd_ (data 0) and the thread's queries' sockets (data: attempt)
  std::thread thread_;
  std::mutex mu_;
  bool stopping_ = false;
  std::map<std::string, Pending> pending_;  // by name
  // Every attempt in flight: the name its queries are for. Numbers are never
  // reused, so a late event for an attempt that is over finds nothing.
  std::map<uint64_t, std::string> attempts_;
  uint64_t next_attempt_ = 0;
  // Attempts given up (retried, timed out, stopped) while their caller still
  // waited on the socket: shut down, closed at OnWatchDone.
  std::map<uint64_t, UpstreamQuery> given_up_;
  // When the thread wakes at the latest (it sleeps in epoll_wait until then).
  std::chrono::steady_clock::time_point wake_at_{};
  std::map<std::string, CacheEntry> cache_;
  std::list<std::string> lru_;  // front = most recently used
  std::atomic<uint64_t> upstream_mismatched_{0};
};

// "1.2.3.4:53", "[::1]:5353", "1.2.3.4" (port 53).
std::optional<sockaddr_storage> ParseSocketAddress(const std::string& text, uint16_t default_port);
// The first nameserver of /etc/resolv.conf, port 53.
StatusOr<sockaddr_storage> SystemResolver();
std::string FormatSocketAddress(const sockaddr_storage& addr);

}  // namespace egressd::dns
