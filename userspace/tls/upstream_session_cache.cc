#include "userspace/tls/upstream_session_cache.h"

#include <fmt/format.h>

#include <ctime>

namespace egressd::tls {
namespace {

bool Usable(SSL_SESSION* s, time_t now) {
  if (SSL_SESSION_is_resumable(s) != 1) return false;
  return static_cast<time_t>(SSL_SESSION_get_time(s)) + SSL_SESSION_get_timeout(s) > now;
}

}  // namespace

std::string UpstreamSessionCache::Key(uint64_t sandbox, std::string_view host, uint16_t port,
                                      std::string_view alpn) {
  // Host names and ALPN ids never contain NUL.
  return fmt::format("{}{}{}{}{}{}{}", sandbox, '\0', host, '\0', port, '\0', alpn);
}

void UpstreamSessionCache::Put(const std::string& key, SslSessionPtr session) {
  if (!session || capacity_ == 0) return;
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    lru_.push_front(Entry{key, {}});
    it = index_.emplace(key, lru_.begin()).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  auto& sessions = it->second->sessions;
  if (sessions.size() >= kSessionsPerKey) {
    sessions.erase(sessions.begin());
    --count_;
  }
  sessions.push_back(std::move(session));
  ++count_;
  ++counts_.kept;
  EvictOverCapacity();
}

SslSessionPtr UpstreamSessionCache::Take(const std::string& key,
                                         const std::function<bool(SSL_SESSION*)>& fits) {
  const time_t now = time(nullptr);
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++counts_.none;
    return nullptr;
  }
  auto& sessions = it->second->sessions;
  SslSessionPtr out;
  for (size_t i = sessions.size(); i-- > 0 && !out;) {  // newest first
    SSL_SESSION* s = sessions[i].get();
    if (!Usable(s, now)) {
      sessions.erase(sessions.begin() + static_cast<ptrdiff_t>(i));
      --count_;
    } else if (fits && !fits(s)) {
      continue;  // kept for the names it fits
    } else if (SSL_SESSION_get_protocol_version(s) >= TLS1_3_VERSION) {
      out = std::move(sessions[i]);
      sessions.erase(sessions.begin() + static_cast<ptrdiff_t>(i));
      --count_;
    } else {
      // TLS 1.2: offered again and again, each time as a copy, so that a
      // connection ending without close_notify (OpenSSL then marks the
      // session it used non-resumable) leaves the cached one usable.
      out.reset(SSL_SESSION_dup(s));
      if (!out) break;
    }
  }
  ++(out ? counts_.offered : counts_.none);
  if (sessions.empty()) {
    lru_.erase(it->second);
    index_.erase(it);
  } else {
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  return out;
}

UpstreamSessionCache::Counts UpstreamSessionCache::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

size_t UpstreamSessionCache::size() const {
  std::lock_guard lock(mu_);
  return count_;
}

void UpstreamSessionCache::EvictOverCapacity() {
  // One session at a time, the oldest of the least recently used key.
  while (count_ > capacity_ && !lru_.empty()) {
    Entry& oldest = lru_.back();
    if (!oldest.sessions.empty()) {
      oldest.sessions.erase(oldest.sessions.begin());
      --count_;
    }
    if (oldest.sessions.empty()) {
      index_.erase(oldest.key);
      lru_.pop_back();
    }
  }
}

}  // namespace egressd::tls
