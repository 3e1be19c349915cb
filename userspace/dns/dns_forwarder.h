// The DNS forwarder sandboxes reach: the kernel redirects their UDP port-53
// traffic to 127.0.0.1/::1:PORT here, and each query is relayed to the
// upstream resolver with a fresh id. Malformed queries are dropped and counted.
// (Answering by policy, NXDOMAIN for denied names, comes with the DNS issue.)
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <thread>

#include "userspace/common/status.h"

namespace egressd::dns {

class DnsForwarder {
 public:
  DnsForwarder(uint16_t listen_port, sockaddr_storage upstream);
  ~DnsForwarder();
  Status Start();
  void Stop();

  uint64_t queries() const { return queries_; }
  uint64_t malformed() const { return malformed_; }

 private:
  struct Outstanding {
    sockaddr_storage client{};
    socklen_t client_len = 0;
    int listener_fd = -1;
    uint16_t client_id = 0;
    std::chrono::steady_clock::time_point expires;
  };
  void Run();
  void OnQuery(int listener_fd);
  void OnResponse();

  uint16_t listen_port_;
  sockaddr_storage upstream_;
  int listen4_ = -1, listen6_ = -1, upstream_fd_ = -1, wake_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::map<uint16_t, Outstanding> outstanding_;  // by upstream id
  uint16_t next_id_ = 1;
  std::atomic<uint64_t> queries_{0}, malformed_{0};
};

}  // namespace egressd::dns
