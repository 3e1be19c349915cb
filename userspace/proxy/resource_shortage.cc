#include "userspace/proxy/resource_shortage.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "userspace/common/rate_limited_warning.h"
#include "userspace/proxy/original_destination.h"

namespace egressd::proxy {
bool IsResourceShortage(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

void WarnResourceShortage(ProxyGlobalCounters& counters, const std::string& what) {
  static RateLimitedWarning warning(std::chrono::seconds(5));
  if (!warning.Due()) return;
  spdlog::warn(
      "proxy: {} (out of file descriptors or memory): connections are refused until they come "
      "back (counted in status: "
      "proxy.accept_errors {}, refused_no_fd {}, upstream_socket_errors {}, buffer_errors {}; this "
      "warning at most every {} s)",
      what, counters.accept_errors.load(), counters.refused_no_fd.load(),
      counters.upstream_socket_errors.load(), counters.buffer_errors.load(),
      warning.period_seconds());
}

UniqueFd OpenSpareFd() {
  return UniqueFd(open("/dev/null", O_RDONLY | O_CLOEXEC));
}

size_t RefuseWaitingConnections(int listener_fd, UniqueFd& spare, const kernel::BpfPrograms& bpf,
                                size_t max) {
  spare.Reset();
  size_t refused = 0;
  while (refused < max) {
    // The listener is blocking: accept only what poll says is waiting.
    pollfd ready{listener_fd, POLLIN, 0};
    if (poll(&ready, 1, 0) != 1 || !(ready.revents & POLLIN)) break;
    int fd = accept4(listener_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) break;                       // another thread took the freed descriptor first
    (void)TakeOriginalDestination(fd, bpf);  // its record goes with it
    close(fd);
    ++refused;
  }
  spare = OpenSpareFd();
  return refused;
}

}  // namespace egressd::proxy
