#include "userspace/dns/resolver.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "userspace/protocol/dns_message.h"

namespace egressd::dns {

using Clock = std::chrono::steady_clock;

Resolver::Resolver(Options options) : options_(options) {
  std::random_device rd;
  next_id_ = static_cast<uint16_t>(rd());
}

Resolver::~Resolver() {
  Stop();
}

Status Resolver::Start() {
  fd_ = socket(options_.upstream.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return EGRESSD_ERROR("resolver socket: {}", strerror(errno));
  socklen_t len =
      options_.upstream.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (connect(fd_, reinterpret_cast<const sockaddr*>(&options_.upstream), len) != 0)
    return EGRESSD_ERROR("resolver connect to {}: {}", FormatSocketAddress(options_.upstream),
                         strerror(errno));
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return EGRESSD_ERROR("resolver eventfd: {}", strerror(errno));
  thread_ = std::thread([this] { Run(); });
  return {};
}

void Resolver::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  fd_ = wake_fd_ = -1;
}

uint16_t Resolver::NextId() {
  // Sequential ids from a random start; a collision with an in-flight id is skipped.
  for (;;) {
    uint16_t id = next_id_++;
    if (id != 0 && !pending_by_id_.count(id)) return id;
  }
}

std::optional<ResolveResult> Resolver::Lookup(const std::string& name, Callback callback) {
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  if (auto it = cache_.find(name); it != cache_.end()) {
    if (it->second.expires > now) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.result;
    }
    lru_.erase(it->second.lru);
    cache_.erase(it);
  }
  if (stopping_) return ResolveResult{{}, "resolver stopped"};
  if (!protocol::BuildDnsQuery(0, name, protocol::DnsType::kA))
    return ResolveResult{{}, "not a valid DNS name"};
  auto [it, inserted] = pending_.try_emplace(name);
  it->second.waiters.push_back(std::move(callback));
  if (inserted) {
    Pending& p = it->second;
    p.name = name;
    p.attempts_left = options_.attempts;
    SendQueries(p);
  }
  return std::nullopt;
}

void Resolver::SendQueries(Pending& p) {
  pending_by_id_.erase(p.id_a);
  pending_by_id_.erase(p.id_aaaa);
  p.attempts_left--;
  p.deadline = Clock::now() + options_.timeout;
  auto send_one = [&](protocol::DnsType type, uint16_t& id, bool done) {
    if (done) return;
    id = NextId();
    auto query = protocol::BuildDnsQuery(id, p.name, type);
    if (!query) {
      p.error = "not a valid DNS name";
      return;
    }
    pending_by_id_[id] = p.name;
    if (send(fd_, query->data(), query->size(), 0) < 0 && p.error.empty())
      p.error = std::string("send: ") + strerror(errno);
  };
  send_one(protocol::DnsType::kA, p.id_a, p.done_a);
  send_one(protocol::DnsType::kAAAA, p.id_aaaa, p.done_aaaa);
}

void Resolver::OnDatagram(const uint8_t* data, size_t size) {
  std::string error;
  auto response = protocol::ParseDnsResponse({data, size}, &error);
  if (!response) return;  // garbage from the upstream: ignored, the query times out
  auto id_it = pending_by_id_.find(response->id);
  if (id_it == pending_by_id_.end()) return;
  std::string name = id_it->second;
  auto p_it = pending_.find(name);
  if (p_it == pending_.end()) return;
  Pending& p = p_it->second;
  // The answer must be for the question we asked (anti-spoofing beyond the id).
  std::string qname = response->question_name;
  std::transform(qname.begin(), qname.end(), qname.begin(), ::tolower);
  if (!qname.empty() && qname.back() == '.') qname.pop_back();
  if (qname != name) return;
  bool is_a = response->id == p.id_a;
  if ((is_a && p.done_a) || (!is_a && p.done_aaaa)) return;
  pending_by_id_.erase(id_it);
  (is_a ? p.done_a : p.done_aaaa) = true;
  if (response->rcode == 0) {
    for (const auto& answer : response->answers) {
      policy::IpAddress addr;
      addr.bytes = answer.addr;
      if (std::find(p.addrs.begin(), p.addrs.end(), addr) == p.addrs.end()) p.addrs.push_back(addr);
      p.min_ttl = std::min(p.min_ttl, answer.ttl);
    }
  } else if (response->rcode == 3) {
    p.error = "NXDOMAIN";
  } else if (p.error.empty()) {
    p.error = "DNS error rcode " + std::to_string(response->rcode);
  }
  if (p.done_a && p.done_aaaa) Complete(name);
}

void Resolver::Store(const std::string& name, const ResolveResult& r, std::chrono::seconds ttl) {
  if (ttl.count() <= 0) return;
  if (auto it = cache_.find(name); it != cache_.end()) {
    lru_.erase(it->second.lru);
    cache_.erase(it);
  }
  while (cache_.size() >= options_.cache_entries && !lru_.empty()) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(name);
  cache_[name] = CacheEntry{r, Clock::now() + ttl, lru_.begin()};
}

void Resolver::Complete(const std::string& name) {
  auto it = pending_.find(name);
  Pending p = std::move(it->second);
  pending_.erase(it);
  pending_by_id_.erase(p.id_a);
  pending_by_id_.erase(p.id_aaaa);
  ResolveResult result;
  if (!p.addrs.empty()) {
    result.addrs = std::move(p.addrs);
    auto ttl = std::min<std::chrono::seconds>(std::chrono::seconds(p.min_ttl), options_.max_ttl);
    Store(name, result, ttl);
  } else {
    result.error = p.error.empty() ? "no addresses" : p.error;
    if (result.error != "timeout") Store(name, result, options_.negative_ttl);
  }
  // Callbacks run with the lock held: they must only post to their own thread.
  for (auto& cb : p.waiters) cb(result);
}

void Resolver::Run() {
  uint8_t buf[4096];
  for (;;) {
    int timeout_ms = 1000;
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      auto now = Clock::now();
      for (auto& [name, p] : pending_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(p.deadline - now);
        timeout_ms = std::max<int>(0, std::min<int>(timeout_ms, left.count() + 1));
      }
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int n = poll(fds, 2, timeout_ms);
    std::lock_guard lock(mu_);
    if (stopping_) break;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      for (;;) {
        ssize_t got = recv(fd_, buf, sizeof(buf), 0);
        if (got <= 0) break;
        OnDatagram(buf, static_cast<size_t>(got));
      }
    }
    auto now = Clock::now();
    std::vector<std::string> expired;
    for (auto& [name, p] : pending_) {
      if (p.deadline > now) continue;
      if (p.attempts_left > 0) {
        SendQueries(p);
      } else {
        expired.push_back(name);
      }
    }
    for (const auto& name : expired) {
      Pending& p = pending_[name];
      if (p.addrs.empty()) p.error = "timeout";
      Complete(name);
    }
  }
  // Fail every waiter on shutdown so no connection waits forever.
  std::lock_guard lock(mu_);
  for (auto& [name, p] : pending_)
    for (auto& cb : p.waiters) cb(ResolveResult{{}, "resolver stopped"});
  pending_.clear();
}

std::optional<sockaddr_storage> ParseSocketAddress(const std::string& text, uint16_t default_port) {
  sockaddr_storage ss{};
  std::string host = text;
  uint16_t port = default_port;
  auto parse_port = [&](const std::string& p) -> bool {
    if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit)) return false;
    int v = std::stoi(p);
    if (v < 1 || v > 65535) return false;
    port = static_cast<uint16_t>(v);
    return true;
  };
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':' || !parse_port(text.substr(close + 2))) return std::nullopt;
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    auto colon = text.find(':');
    host = text.substr(0, colon);
    if (!parse_port(text.substr(colon + 1))) return std::nullopt;
  }
  auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    return ss;
  }
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return ss;
  }
  return std::nullopt;
}

StatusOr<sockaddr_storage> SystemResolver() {
  std::ifstream conf("/etc/resolv.conf");
  std::string line;
  while (std::getline(conf, line)) {
    std::istringstream in(line);
    std::string key, value;
    in >> key >> value;
    if (key != "nameserver") continue;
    if (auto addr = ParseSocketAddress(
            value.find(':') != std::string::npos ? "[" + value + "]" : value, 53))
      return *addr;
  }
  return EGRESSD_ERROR("no nameserver in /etc/resolv.conf: pass --dns-upstream IP:PORT");
}

std::string FormatSocketAddress(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    auto* in4 = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(ntohs(in4->sin_port));
  }
  auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
  inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
  return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
}

}  // namespace egressd::dns
