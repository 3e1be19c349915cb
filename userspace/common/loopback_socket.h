// Sockets bound to 127.0.0.1 or [::1] (IPv6-only), as egressd's proxy and DNS
// listeners are: the kernel redirects sandboxes to these addresses.
#pragma once

#include <cstdint>

#include "userspace/common/status.h"

namespace egressd {

// type: SOCK_STREAM (also listen()s, backlog 4096, SO_REUSEPORT) or SOCK_DGRAM.
StatusOr<int> BindLoopback(int family, int type, uint16_t port);

}  // namespace egressd
