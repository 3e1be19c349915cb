#include "userspace/proxy/proxy_port.h"

#include <sys/socket.h>

#include "userspace/common/loopback_socket.h"

namespace egressd::proxy {

StatusOr<ProxyPortReservation> ReserveProxyPort() {
  Status last;
  // The kernel picks a port free on 127.0.0.1; [::1] may have it taken, then
  // another one is tried.
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto v4 = BindLoopback(AF_INET, SOCK_STREAM, 0, /*reuse_port=*/true);
    if (!v4.ok()) return v4.status();
    ProxyPortReservation r;
    r.v4.Reset(*v4);
    r.port = LocalPort(r.v4.get());
    if (r.port == 0) return EGRESSD_ERROR("--proxy-port 0: cannot read the port the kernel picked");
    auto v6 = BindLoopback(AF_INET6, SOCK_STREAM, r.port, /*reuse_port=*/true);
    if (v6.ok()) {
      r.v6.Reset(*v6);
      return r;
    }
    last = v6.status();
  }
  return EGRESSD_ERROR("--proxy-port 0: no port free on both 127.0.0.1 and [::1]: {}",
                       last.message());
}

}  // namespace egressd::proxy
