// Sockets bound to 127.0.0.1 or [::1] (IPv6-only), as egressd's proxy and DNS
// listeners are: the kernel redirects sandboxes to these addresses.
#pragma once

#include <cstdint>

#include "userspace/common/status.h"

namespace egressd {

// type: SOCK_STREAM (also listen()s, backlog 4096) or SOCK_DGRAM. Port 0: the
// kernel picks one (LocalPort tells which). SO_REUSEPORT only where asked for
// (the shared proxy listeners, one per worker): anything else must be ours alone.
// A stream listener has TCP_NODELAY, which the connections it accepts inherit
// (the proxy relays what arrives as it arrives: Nagle plus the peer's delayed
// ACK would hold small writes back for tens of milliseconds).
StatusOr<int> BindLoopback(int family, int type, uint16_t port, bool reuse_port = false);

// The local port of a bound socket, 0 on error.
uint16_t LocalPort(int fd);

}  // namespace egressd
