// Idle upstream connections of the proxy, kept for the next request to the
// same place (whichever worker it comes to): a client connection that ends (or moves to another
// host) leaves its upstream here when the last exchange on it finished cleanly, and a new request
// for the same key takes it instead of connecting (and, intercepted, instead of a TLS handshake
// with the upstream).
//
// Key: the sandbox's attachment (its generation: never shared between
// sandboxes, nor with a later attachment of the same id), plain or TLS, the
// host the request was decided for (the SNI and verified name under TLS),
// the port and the address the upstream choice picked. The policy decides
// every request before the key is looked up, so a pooled connection only
// ever serves a request the current policy allows, to the address it chose.
//
// An entry is kept at most kMaxIdle (plus the worker's sweep period), so it
// is gone before the usual origin keep-alive timeouts (5 s and up) close it;
// Take also drops an entry whose upstream has closed or sent anything
// meanwhile (a non-blocking MSG_PEEK). Bounded per key, per sandbox
// attachment (a quarter of the pool: one busy sandbox leaves room for others,
// and holds at most that many idle descriptors) and in all; the newest entry
// is taken first. Thread-safe: the workers share one (an entry
// holds no io_uring state, only a socket and its TLS side).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/ip_address.h"
#include "userspace/common/unique_fd.h"
#include "userspace/proxy/tls_side.h"

namespace egressd::proxy {

struct IdleUpstream {
  UniqueFd fd;
  std::unique_ptr<TlsSide> tls;                 // null for plain HTTP
  std::chrono::steady_clock::time_point since;  // the upstream's last byte either way
};

class UpstreamPool {
 public:
  static constexpr std::chrono::milliseconds kMaxIdle{1000};
  static constexpr size_t kMaxPerKey = 64;
  static constexpr size_t kMaxPerSandbox = 256;
  static constexpr size_t kMaxTotal = 1024;

  // `gauge`: the proxy-wide count of pooled connections (may be null).
  explicit UpstreamPool(std::atomic<int64_t>* gauge) : gauge_(gauge) {}
  ~UpstreamPool() { Clear(); }
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // A key's text up to its first '|' names its sandbox attachment (what
  // kMaxPerSandbox counts): Key writes the generation there.
  static std::string Key(uint64_t sandbox_generation, bool tls, const std::string& host,
                         uint16_t port, const policy::IpAddress& addr);

  // Keeps the connection; false (and it is closed) when the pool, the key's
  // share or its sandbox's is full.
  bool Put(const std::string& key, IdleUpstream idle);
  // The newest live entry for `key`, if any.
  std::optional<IdleUpstream> Take(const std::string& key,
                                   std::chrono::steady_clock::time_point now);
  // Closes entries idle longer than kMaxIdle.
  void Expire(std::chrono::steady_clock::time_point now);
  void Clear();
  size_t size() const {
    std::lock_guard lock(mu_);
    return total_;
  }

 private:
  struct Bucket {
    std::string sandbox;                // the key's sandbox part
    std::vector<IdleUpstream> entries;  // oldest first
  };
  void Count(const std::string& sandbox, int64_t delta);  // with mu_ held

  std::atomic<int64_t>* gauge_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> idle_;         // by key
  std::unordered_map<std::string, size_t> per_sandbox_;  // entries, none at 0
  size_t total_ = 0;
};

}  // namespace egressd::proxy
