#include "userspace/dns/dns_forwarder.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "userspace/common/loopback_socket.h"
#include "userspace/dns/resolver.h"
#include "userspace/protocol/dns_message.h"

namespace egressd::dns {
namespace {

constexpr auto kQueryLifetime = std::chrono::seconds(10);
constexpr size_t kMaxOutstanding = 4096;

}  // namespace

DnsForwarder::DnsForwarder(uint16_t listen_port, sockaddr_storage upstream)
    : listen_port_(listen_port), upstream_(upstream) {
  next_id_ = static_cast<uint16_t>(std::random_device{}());
}

DnsForwarder::~DnsForwarder() {
  Stop();
}

Status DnsForwarder::Start() {
  auto l4 = BindLoopback(AF_INET, SOCK_DGRAM, listen_port_);
  if (!l4.ok()) return l4.status();
  listen4_ = *l4;
  auto l6 = BindLoopback(AF_INET6, SOCK_DGRAM, listen_port_);
  if (!l6.ok()) return l6.status();
  listen6_ = *l6;
  upstream_fd_ = socket(upstream_.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  socklen_t len = upstream_.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (upstream_fd_ < 0 ||
      connect(upstream_fd_, reinterpret_cast<const sockaddr*>(&upstream_), len) != 0)
    return EGRESSD_ERROR("DNS upstream {}: {}", FormatSocketAddress(upstream_), strerror(errno));
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { Run(); });
  return {};
}

void DnsForwarder::Stop() {
  if (stop_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : {listen4_, listen6_, upstream_fd_, wake_fd_})
    if (fd >= 0) close(fd);
}

void DnsForwarder::OnQuery(int listener_fd) {
  uint8_t buf[4096];
  for (;;) {
    Outstanding o;
    o.client_len = sizeof(o.client);
    ssize_t n = recvfrom(listener_fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&o.client),
                         &o.client_len);
    if (n < 0) return;
    queries_++;
    std::string error;
    auto question = protocol::ParseDnsQuery({buf, static_cast<size_t>(n)}, &error);
    if (!question || outstanding_.size() >= kMaxOutstanding) {
      malformed_++;
      continue;  // dropped: the client times out, nothing reaches the upstream
    }
    uint16_t id;
    do {
      id = next_id_++;
    } while (outstanding_.count(id));
    o.listener_fd = listener_fd;
    o.client_id = question->id;
    o.expires = std::chrono::steady_clock::now() + kQueryLifetime;
    buf[0] = static_cast<uint8_t>(id >> 8);
    buf[1] = static_cast<uint8_t>(id & 0xff);
    if (send(upstream_fd_, buf, static_cast<size_t>(n), 0) == n) outstanding_[id] = o;
  }
}

void DnsForwarder::OnResponse() {
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = recv(upstream_fd_, buf, sizeof(buf), 0);
    if (n < 0) return;
    if (n < 12) continue;
    uint16_t id = static_cast<uint16_t>(buf[0] << 8 | buf[1]);
    auto it = outstanding_.find(id);
    if (it == outstanding_.end()) continue;
    Outstanding o = it->second;
    outstanding_.erase(it);
    buf[0] = static_cast<uint8_t>(o.client_id >> 8);
    buf[1] = static_cast<uint8_t>(o.client_id & 0xff);
    sendto(o.listener_fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&o.client),
           o.client_len);
  }
}

void DnsForwarder::Run() {
  while (!stop_) {
    pollfd fds[4] = {{listen4_, POLLIN, 0},
                     {listen6_, POLLIN, 0},
                     {upstream_fd_, POLLIN, 0},
                     {wake_fd_, POLLIN, 0}};
    int n = poll(fds, 4, 1000);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) OnQuery(listen4_);
    if (fds[1].revents & POLLIN) OnQuery(listen6_);
    if (fds[2].revents & POLLIN) OnResponse();
    auto now = std::chrono::steady_clock::now();
    std::erase_if(outstanding_, [&](const auto& kv) { return kv.second.expires < now; });
  }
}

}  // namespace egressd::dns
