#include "userspace/proxy/original_destination.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace egressd::proxy {

std::optional<egressd_orig_dst> TakeOriginalDestination(int accepted_fd,
                                                        const kernel::BpfPrograms& bpf) {
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  uint64_t cookie = 0;
  socklen_t cookie_len = sizeof(cookie);
  if (getpeername(accepted_fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 ||
      getsockopt(accepted_fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &cookie_len) != 0)
    return std::nullopt;
  egressd_orig_dst_key key{};
  key.netns_cookie = cookie;
  if (peer.ss_family == AF_INET) {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&peer);
    key.client_addr[2] = htonl(0xffff);
    key.client_addr[3] = in4->sin_addr.s_addr;
    key.client_port = in4->sin_port;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&peer);
    memcpy(key.client_addr, &in6->sin6_addr, 16);
    key.client_port = in6->sin6_port;
  }
  return bpf.TakeOrigDst(key);
}

}  // namespace egressd::proxy
