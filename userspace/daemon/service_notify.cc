#include "userspace/daemon/service_notify.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cstring>

namespace egressd::daemon {
namespace {

// A failure to notify is logged, never fatal: the daemon works the same; a
// manager that waits for READY times the service out and says so.
void Notify(const std::string& state) {
  int r = sd_notify(/*unset_environment=*/0, state.c_str());
  if (r < 0) spdlog::warn("service manager notification failed: {}", strerror(-r));
}

}  // namespace

void NotifyReady(const std::string& status) {
  std::string line = status;
  for (char& c : line)
    if (c == '\n') c = ' ';
  Notify("READY=1\nSTATUS=" + line);
}

void NotifyReloading() {
  Notify("RELOADING=1\nSTATUS=reloading every sandbox's policy");
}

void NotifyStopping() {
  Notify("STOPPING=1\nSTATUS=stopping");
}

}  // namespace egressd::daemon
