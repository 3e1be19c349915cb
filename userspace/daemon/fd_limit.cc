#include "userspace/daemon/fd_limit.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace egressd::daemon {

void RaiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("file descriptor limit: getrlimit: {}", strerror(errno));
    return;
  }
  const rlim_t before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      spdlog::warn("file descriptor limit: could not raise {} to {}: {}", before, limit.rlim_max,
                   strerror(errno));
      return;
    }
  }
  spdlog::info("file descriptor limit: {} (raised from {}; each proxied connection takes two)",
               limit.rlim_cur, before);
}

}  // namespace egressd::daemon
