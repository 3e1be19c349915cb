#include "userspace/dns/resolver.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "userspace/protocol/dns_message.h"

namespace egressd::dns {

using Clock = std::chrono::steady_clock;

namespace {
// Lookups in flight hold a socket each (and an attempt given up while a
// worker still waits on its socket holds it until that wait ends, at most
// a completion batch): past this many, new ones fail (as a timeout would)
// rather than take descriptors the proxy needs.
constexpr size_t kMaxPending = 128;
}  // namespace

Resolver::Resolver(Options options) : options_(options) {}

Resolver::~Resolver() {
  Stop();
}

Status Resolver::Start() {
  // Every query has a socket of its own; this one only checks the address now.
  UniqueFd probe(socket(options_.upstream.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return EGRESSD_ERROR("resolver socket: {}", strerror(errno));
  socklen_t len =
      options_.upstream.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&options_.upstream), len) != 0)
    return EGRESSD_ERROR("resolver connect to {}: {}", FormatSocketAddress(options_.upstream),
                         strerror(errno));
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return EGRESSD_ERROR("resolver eventfd: {}", strerror(errno));
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return EGRESSD_ERROR("resolver epoll: {}", strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // attempts are numbered from 1
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0)
    return EGRESSD_ERROR("resolver epoll: {}", strerror(errno));
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
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = -1;
  if (epoll_fd_ >= 0) close(epoll_fd_);
  epoll_fd_ = -1;
}

std::optional<ResolveResult> Resolver::Lookup(const std::string& name, Callback callback,
                                              AnswerWatch* watch) {
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
  if (!pending_.count(name) && pending_.size() >= kMaxPending)
    return ResolveResult{{}, "too many lookups in flight"};
  auto [it, inserted] = pending_.try_emplace(name);
  it->second.waiters.push_back(std::move(callback));
  if (inserted) {
    Pending& p = it->second;
    p.name = name;
    p.attempts_left = options_.attempts;
    if (int err = SendQueries(p, /*caller_watches=*/watch != nullptr)) {
      ResolveResult refused{{}, RefusedError(err)};  // not cached: says nothing of the name
      Drop(p);
      pending_.erase(it);
      return refused;
    }
    if (watch && p.watched_by_caller) *watch = AnswerWatch{p.query.fd(), p.attempt};
    // Its socket is watched already; the thread needs waking only when
    // this deadline comes before its own (a short --dns-timeout).
    if (p.deadline < wake_at_) {
      uint64_t one = 1;
      (void)!write(wake_fd_, &one, sizeof(one));
    }
  }
  return std::nullopt;
}

int Resolver::SendQueries(Pending& p, bool caller_watches) {
  p.attempts_left--;
  p.deadline = Clock::now() + options_.timeout;
  Drop(p);  // a late answer to the previous attempt is not waited for
  std::vector<std::vector<uint8_t>> messages;
  for (bool is_a : {true, false}) {
    if (is_a ? p.done_a : p.done_aaaa) continue;
    // The id is chosen by SendAll.
    auto message =
        protocol::BuildDnsQuery(0, p.name, is_a ? protocol::DnsType::kA : protocol::DnsType::kAAAA);
    if (!message) {
      p.error = "not a valid DNS name";
      return 0;
    }
    messages.push_back(std::move(*message));
    p.query_is_a.push_back(is_a);
  }
  if (messages.empty()) return 0;
  auto sent = UpstreamQuery::SendAll(options_.upstream, std::move(messages));
  if (!sent.ok()) {
    if (p.error.empty()) p.error = sent.status().message();
    p.query_is_a.clear();
    return 0;  // retried, or timed out, at the deadline
  }
  p.query = std::move(*sent);
  if (p.query.error() != 0) return p.query.error();
  p.attempt = ++next_attempt_;
  attempts_[p.attempt] = p.name;
  if (caller_watches)
    p.watched_by_caller = true;
  else
    Watch(p);
  return 0;
}

void Resolver::Watch(const Pending& p) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = p.attempt;
  // Fails only without memory: the queries then time out (and are retried).
  (void)epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p.query.fd(), &ev);
}

void Resolver::Drop(Pending& p) {
  if (p.attempt != 0) attempts_.erase(p.attempt);
  if (p.watched_by_caller) {
    // Shutting the socket down ends the caller's wait (POLLHUP); it stays
    // open until OnWatchDone, so that its number is not reused by another
    // socket before the caller's wait has begun and ended.
    shutdown(p.query.fd(), SHUT_RDWR);
    given_up_.emplace(p.attempt, std::move(p.query));
  }
  p.query = UpstreamQuery();  // closing the socket takes it out of the epoll set
  p.query_is_a.clear();
  p.attempt = 0;
  p.watched_by_caller = false;
}

void Resolver::OnWatchDone(uint64_t attempt) {
  std::lock_guard lock(mu_);
  if (given_up_.erase(attempt) != 0) return;  // closes its socket
  auto a = attempts_.find(attempt);
  if (a == attempts_.end()) return;  // answered, retried, timed out or stopped meanwhile
  auto it = pending_.find(a->second);
  if (it == pending_.end() || it->second.attempt != attempt) return;
  Pending& p = it->second;
  p.watched_by_caller = false;
  if (!ReadAnswers(p)) Watch(p);  // what is still missing wakes the thread
}

bool Resolver::ReadAnswers(Pending& p) {
  for (;;) {
    uint64_t mismatched = 0;
    auto answer = p.query.ReceiveAnswer(&mismatched);
    upstream_mismatched_ += mismatched;
    if (!answer) {
      if (p.query.error() == 0) return false;
      OnRefused(p, p.query.error());
      return true;
    }
    if (OnAnswer(p, p.query_is_a[answer->index], answer->message)) return true;
  }
}

// `answer` matched its query (id, question, source): see UpstreamQuery.
bool Resolver::OnAnswer(Pending& p, bool is_a, std::span<const uint8_t> answer) {
  std::string error;
  auto response = protocol::ParseDnsResponse(answer, &error);
  (is_a ? p.done_a : p.done_aaaa) = true;
  if (!response) {
    if (p.error.empty()) p.error = "bad answer from the upstream: " + error;
  } else if (response->rcode == 0) {
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
  if (!p.done_a || !p.done_aaaa) return false;
  Complete(std::string(p.name));  // a copy: p goes away
  return true;
}

void Resolver::OnRefused(Pending& p, int err) {
  Drop(p);
  p.done_a = p.done_aaaa = true;
  if (p.error.empty()) p.error = RefusedError(err);
  p.transient = true;
  Complete(std::string(p.name));  // a copy: p goes away
}

std::string Resolver::RefusedError(int err) const {
  return fmt::format("the DNS upstream {} refused the query ({})",
                     FormatSocketAddress(options_.upstream), strerror(err));
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
  Drop(it->second);
  Pending p = std::move(it->second);
  pending_.erase(it);
  ResolveResult result;
  if (!p.addrs.empty()) {
    result.addrs = std::move(p.addrs);
    auto ttl = std::min<std::chrono::seconds>(std::chrono::seconds(p.min_ttl), options_.max_ttl);
    Store(name, result, ttl);
  } else {
    result.error = p.error.empty() ? "no addresses" : p.error;
    if (!p.transient) Store(name, result, options_.negative_ttl);
  }
  // Callbacks run with the lock held: they must only post to their own thread.
  for (auto& cb : p.waiters) cb(result);
}

void Resolver::Run() {
  constexpr int kEvents = 64;
  epoll_event events[kEvents];
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
      wake_at_ = now + std::chrono::milliseconds(timeout_ms);
    }
    int n = epoll_wait(epoll_fd_, events, kEvents, timeout_ms);
    std::lock_guard lock(mu_);
    if (stopping_) break;
    for (int i = 0; i < n; ++i) {
      const uint64_t attempt = events[i].data.u64;
      if (attempt == 0) {  // wake_fd_
        uint64_t v;
        (void)!read(wake_fd_, &v, sizeof(v));
        continue;
      }
      // An attempt over since epoll_wait (answered, retried: its socket
      // closed) is no longer in attempts_: attempts are numbered, never fds.
      auto a = attempts_.find(attempt);
      if (a == attempts_.end()) continue;
      auto it = pending_.find(a->second);
      if (it == pending_.end() || it->second.attempt != attempt) continue;
      ReadAnswers(it->second);
    }
    auto now = Clock::now();
    std::vector<std::string> due;
    for (auto& [name, p] : pending_)
      if (p.deadline <= now) due.push_back(name);
    for (const auto& name : due) {  // each may complete (and leave pending_)
      auto it = pending_.find(name);
      if (it == pending_.end()) continue;
      Pending& p = it->second;
      // An answer that arrived in time may not have been read yet (the
      // caller's completion batch was long, or it came after epoll_wait):
      // read what is there first. No attempt in flight: no socket.
      if (p.attempt != 0 && ReadAnswers(p)) continue;
      if (p.attempts_left > 0) {
        if (int err = SendQueries(p, /*caller_watches=*/false)) OnRefused(p, err);
        continue;
      }
      if (p.addrs.empty()) p.error = "timeout";
      p.transient = true;
      Complete(name);
    }
  }
  // Fail every waiter on shutdown so no connection waits forever.
  std::lock_guard lock(mu_);
  for (auto& [name, p] : pending_) {
    Drop(p);  // ends a caller's wait on its socket
    for (auto& cb : p.waiters) cb(ResolveResult{{}, "resolver stopped"});
  }
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
