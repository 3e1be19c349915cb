// Upstream TLS sessions kept for resumption (a resumed client handshake costs
// ~160 µs of CPU instead of ~480 µs: design.md), shared by every worker.
//
// Keyed by (sandbox, host or address, port, ALPN): a session is only ever
// offered again to the same host (or, keyed by address, to a name its
// verified certificate is valid for: TlsClientContext) and port for the same
// sandbox, so sessions (and what a server could link through them) never
// cross sandboxes. Bounded: at most
// `capacity` sessions in all and kSessionsPerKey per key; the least recently
// used key goes first. TLS 1.3 sessions are single-use (RFC 8446 C.4: a
// ticket offered twice links connections): Take removes them, and the server
// sends fresh tickets on each connection. TLS 1.2 sessions stay until they
// expire or are evicted. Expired or non-resumable sessions are never returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "userspace/common/openssl_ptr.h"

namespace egressd::tls {

class UpstreamSessionCache {
 public:
  static constexpr size_t kDefaultCapacity = 1024;
  // Many connections at once to one upstream each take one: a full
  // handshake brings two tickets, so the surplus builds up to this for them.
  static constexpr size_t kSessionsPerKey = 64;

  explicit UpstreamSessionCache(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // The key of one upstream. `sandbox` is the sandbox's generation (unique
  // per attachment, never reused).
  static std::string Key(uint64_t sandbox, std::string_view host, uint16_t port,
                         std::string_view alpn);

  // Keeps `session` (ownership taken) for `key`.
  void Put(const std::string& key, SslSessionPtr session);
  // A session to offer for `key`, or null: the newest usable one that
  // `fits` (when given); the others stay.
  SslSessionPtr Take(const std::string& key,
                     const std::function<bool(SSL_SESSION*)>& fits = nullptr);

  size_t size() const;  // sessions held
  // Since the start: sessions kept (Put), offers (Take found one), and
  // Takes that found none (a full handshake follows).
  struct Counts {
    uint64_t kept = 0;
    uint64_t offered = 0;
    uint64_t none = 0;
  };
  Counts counts() const;

 private:
  struct Entry {
    std::string key;
    std::vector<SslSessionPtr> sessions;  // oldest first
  };
  void EvictOverCapacity();  // with mu_ held

  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  size_t count_ = 0;
  Counts counts_;  // with mu_ held
};

}  // namespace egressd::tls
