// The sockets that belong to one sandbox: its DNS listeners (UDP and TCP,
// 127.0.0.1 and ::1, one port) and, for a sandbox in a network namespace of
// its own, its proxy listeners. A listener identifies the sandbox by itself,
// so DNS needs no lookup of who asked. Ports are the kernel's choice unless
// the caller asks for the ones already in the sandbox's kernel config (a
// restart keeps them when they are still free).
#pragma once

#include <cstdint>

#include "userspace/common/status.h"
#include "userspace/common/unique_fd.h"

namespace egressd::sandbox {

struct SandboxListeners {
  UniqueFd proxy4, proxy6;  // only with_proxy
  UniqueFd dns_udp4, dns_udp6, dns_tcp4, dns_tcp6;
  uint16_t proxy_port = 0;
  uint16_t dns_port = 0;
  uint64_t netns_cookie = 0;  // the kernel's cookie of the namespace they are in
};

// Opens them in the calling thread's network namespace. The IPv6 sockets are
// left out (invalid) when the namespace has no ::1: IPv6 traffic redirected
// there is then refused, which is fail closed.
StatusOr<SandboxListeners> OpenSandboxListeners(bool with_proxy, uint16_t want_proxy_port,
                                                uint16_t want_dns_port);

}  // namespace egressd::sandbox
