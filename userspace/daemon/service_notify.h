// The daemon's state, told to its service manager (systemd's sd_notify
// protocol, Type=notify): READY once the control socket answers, the maps are
// pinned and the recorded sandboxes re-adopted; RELOADING around a SIGHUP
// reload; STOPPING on the way out. Nothing happens when NOTIFY_SOCKET is unset
// (egressd started by hand or by a test).
#pragma once

#include <string>

namespace egressd::daemon {

// `status`: one line shown by `systemctl status egressd`.
void NotifyReady(const std::string& status);
void NotifyReloading();
void NotifyStopping();

}  // namespace egressd::daemon
