// `--proxy-port 0`: the kernel picks the shared proxy listeners' port. The
// port is held (bound on 127.0.0.1 and [::1] with SO_REUSEPORT, as the
// workers' listeners are) from the moment it is picked until the workers have
// bound it too, so no other process can take it in between.
#pragma once

#include <cstdint>

#include "userspace/common/status.h"
#include "userspace/common/unique_fd.h"

namespace egressd::proxy {

struct ProxyPortReservation {
  uint16_t port = 0;
  UniqueFd v4, v6;  // close them once the workers listen on `port`
};

// A port free on both 127.0.0.1 and [::1], picked by the kernel.
StatusOr<ProxyPortReservation> ReserveProxyPort();

}  // namespace egressd::proxy
