#include "userspace/sandbox/sandbox_listeners.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "userspace/common/loopback_socket.h"

namespace egressd::sandbox {
namespace {

struct Wanted {
  int family;
  int type;
  UniqueFd* out;
};

// Binds every socket of `set` on one port: `port`, or one the kernel picks
// for the first socket (retried when a later socket finds it taken).
StatusOr<uint16_t> BindSet(const std::vector<Wanted>& set, uint16_t port) {
  Status last;
  for (int attempt = 0; attempt < 16; ++attempt) {
    uint16_t chosen = port;
    bool ok = true;
    for (const Wanted& w : set) {
      auto fd = BindLoopback(w.family, w.type, chosen);
      if (!fd.ok()) {
        last = fd.status();
        ok = false;
        break;
      }
      w.out->Reset(*fd);
      if (chosen == 0) chosen = LocalPort(*fd);
    }
    if (ok) return chosen;
    for (const Wanted& w : set) w.out->Reset();
    if (port != 0) break;
  }
  return last;
}

// The ports already in the kernel config when they are still free, else new ones.
StatusOr<uint16_t> BindSetPreferring(const std::vector<Wanted>& set, uint16_t want) {
  if (want != 0) {
    auto port = BindSet(set, want);
    if (port.ok()) return port;
  }
  return BindSet(set, 0);
}

bool HasIpv6Loopback() {
  UniqueFd fd(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  return fd.valid() && bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  // Linux 5.14; older libc headers lack it
#endif

}  // namespace

StatusOr<SandboxListeners> OpenSandboxListeners(bool with_proxy, uint16_t want_proxy_port,
                                                uint16_t want_dns_port) {
  SandboxListeners l;
  bool v6 = HasIpv6Loopback();
  std::vector<Wanted> dns = {{AF_INET, SOCK_DGRAM, &l.dns_udp4},
                             {AF_INET, SOCK_STREAM, &l.dns_tcp4}};
  std::vector<Wanted> proxy = {{AF_INET, SOCK_STREAM, &l.proxy4}};
  if (v6) {
    dns.push_back({AF_INET6, SOCK_DGRAM, &l.dns_udp6});
    dns.push_back({AF_INET6, SOCK_STREAM, &l.dns_tcp6});
    proxy.push_back({AF_INET6, SOCK_STREAM, &l.proxy6});
  }
  auto dns_port = BindSetPreferring(dns, want_dns_port);
  if (!dns_port.ok()) return dns_port.status();
  l.dns_port = *dns_port;
  socklen_t len = sizeof(l.netns_cookie);
  if (getsockopt(l.dns_udp4.get(), SOL_SOCKET, SO_NETNS_COOKIE, &l.netns_cookie, &len) != 0)
    return EGRESSD_ERROR("network namespace cookie: {}", strerror(errno));
  if (with_proxy) {
    auto proxy_port = BindSetPreferring(proxy, want_proxy_port);
    if (!proxy_port.ok()) return proxy_port.status();
    l.proxy_port = *proxy_port;
  }
  return l;
}

}  // namespace egressd::sandbox
