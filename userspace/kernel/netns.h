// Network namespaces of sandboxes: opening and checking a namespace
// reference, running code inside one (sockets created there stay there),
// keeping a namespace alive across daemon restarts with a bind mount (as
// `ip netns` does), and finding the namespace of a cgroup's processes.
#pragma once

#include <functional>
#include <string>

#include "userspace/common/status.h"
#include "userspace/common/unique_fd.h"

namespace egressd::kernel {

// Opens a network namespace reference (/proc/PID/ns/net, /run/netns/NAME, a
// bind mount egressd made). Refuses anything that is not a network namespace.
StatusOr<UniqueFd> OpenNetns(const std::string& path);

// Whether `netns_fd` is the namespace the daemon itself runs in.
StatusOr<bool> IsOwnNetns(int netns_fd);

enum class Loopback {
  kBringUp,   // a fresh namespace starts with `lo` down, and egressd listens on loopback
  kLeaveAsIs  // only looking (or closing sockets): change nothing else there
};

// Runs `fn` on a short-lived thread that has joined `netns_fd`: sockets it
// creates belong to that namespace. By default also brings `lo` up there if
// it is down.
Status RunInNetns(int netns_fd, const std::function<Status()>& fn,
                  Loopback loopback = Loopback::kBringUp);

// Keeps the namespace alive at `path` (a new file, bind-mounted over).
Status PinNetns(int netns_fd, const std::string& path);
// Removes what PinNetns made; errors are only logged.
void UnpinNetns(const std::string& path);

struct DetectedNetns {
  UniqueFd fd;         // invalid: the cgroup is empty or in the daemon's namespace
  std::string source;  // "/proc/PID/ns/net" it was opened from, for messages
};

// The one network namespace of every process in `cgroup_dir` (and below) when
// it is not the daemon's, opened while the process that showed it still
// holds it. An error when the processes are in several namespaces.
StatusOr<DetectedNetns> DetectCgroupNetns(const std::string& cgroup_dir);

}  // namespace egressd::kernel
