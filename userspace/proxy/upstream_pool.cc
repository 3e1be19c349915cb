#include "userspace/proxy/upstream_pool.h"

#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>

namespace egressd::proxy {
namespace {

// Nothing to read and not closed: the upstream is still waiting for a request.
bool StillIdle(int fd) {
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::string UpstreamPool::Key(uint64_t sandbox_generation, bool tls, const std::string& host,
                              uint16_t port, const policy::IpAddress& addr) {
  return fmt::format("{}|{}|{}|{}|{}", sandbox_generation, tls ? "tls" : "tcp", host, port,
                     addr.ToString());
}

void UpstreamPool::Count(const std::string& sandbox, int64_t delta) {
  total_ = static_cast<size_t>(static_cast<int64_t>(total_) + delta);
  size_t& mine = per_sandbox_[sandbox];
  mine = static_cast<size_t>(static_cast<int64_t>(mine) + delta);
  if (mine == 0) per_sandbox_.erase(sandbox);
  if (gauge_) *gauge_ += delta;
}

bool UpstreamPool::Put(const std::string& key, IdleUpstream idle) {
  std::lock_guard lock(mu_);
  if (!idle.fd.valid() || total_ >= kMaxTotal) return false;
  const std::string sandbox = key.substr(0, key.find('|'));
  auto mine = per_sandbox_.find(sandbox);
  if (mine != per_sandbox_.end() && mine->second >= kMaxPerSandbox) return false;
  Bucket& bucket = idle_[key];
  if (bucket.entries.size() >= kMaxPerKey) return false;
  bucket.sandbox = sandbox;
  bucket.entries.push_back(std::move(idle));
  Count(sandbox, 1);
  return true;
}

std::optional<IdleUpstream> UpstreamPool::Take(const std::string& key,
                                               std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return std::nullopt;
  Bucket& bucket = it->second;
  std::optional<IdleUpstream> found;
  while (!bucket.entries.empty() && !found) {
    IdleUpstream idle = std::move(bucket.entries.back());
    bucket.entries.pop_back();
    Count(bucket.sandbox, -1);
    if (now - idle.since <= kMaxIdle && StillIdle(idle.fd.get())) found = std::move(idle);
  }
  if (bucket.entries.empty()) idle_.erase(it);
  return found;
}

void UpstreamPool::Expire(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  for (auto it = idle_.begin(); it != idle_.end();) {
    Bucket& bucket = it->second;
    auto& entries = bucket.entries;
    size_t keep = 0;  // entries are oldest first: the expired ones lead
    while (keep < entries.size() && now - entries[keep].since > kMaxIdle) keep++;
    if (keep > 0) {
      entries.erase(entries.begin(), entries.begin() + static_cast<ptrdiff_t>(keep));
      Count(bucket.sandbox, -static_cast<int64_t>(keep));
    }
    it = entries.empty() ? idle_.erase(it) : std::next(it);
  }
}

void UpstreamPool::Clear() {
  std::lock_guard lock(mu_);
  if (gauge_) *gauge_ -= static_cast<int64_t>(total_);
  total_ = 0;
  per_sandbox_.clear();
  idle_.clear();
}

}  // namespace egressd::proxy
