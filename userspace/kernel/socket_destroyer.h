// Closing the sockets a cgroup opened before egressd attached to it. The
// cgroup hooks judge connect() and sendmsg(): a TCP connection or a connected
// UDP socket that existed before the attach never passes them again. At
// attach they are found with a sock_diag dump filtered by cgroup id (the
// cgroup and its descendants) and destroyed (SOCK_DESTROY, as `ss -K` does):
// the owner's next call fails with ECONNABORTED, a TCP peer gets a RST, a
// UDP socket is left unconnected (its next send meets the sendmsg hook).
//
// Left alone: listening sockets, unconnected UDP sockets (every send is
// judged), and sockets whose peer is loopback (127/8, ::1,
// ::ffff:127.0.0.0/104: the proxy, the sandbox's DNS listener, or the
// sandbox's own namespace). A socket belongs to the cgroup it was created in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "userspace/common/status.h"

namespace egressd::kernel {

enum class SweepAction {
  kClose,      // destroy what is found
  kCountOnly,  // audit mode: report, change nothing
};

struct SocketSweep {
  SweepAction action = SweepAction::kClose;
  size_t tcp = 0;     // TCP connections closed (or, counting only, found)
  size_t udp = 0;     // connected UDP sockets closed (or found)
  size_t failed = 0;  // the kernel refused to destroy them
  size_t total() const { return tcp + udp; }
  size_t closed() const { return action == SweepAction::kClose ? total() : 0; }
};

// Sweeps the sockets of `cgroup_dir` and its descendant cgroups in the
// network namespace `netns_path` ("" is the daemon's) and in every other
// namespace the cgroup's processes are in now. A socket that went away by
// itself meanwhile is not counted.
StatusOr<SocketSweep> SweepCgroupSockets(const std::string& cgroup_dir,
                                         const std::string& netns_path, SweepAction action);

// SweepCgroupSockets at attach, when the sandbox is enforced already: what
// it could not do becomes a warning for the operator (the backstop drops
// the traffic of what stays open) and a log line.
SocketSweep SweepAtAttach(const std::string& cgroup_dir, const std::string& netns_path,
                          SweepAction action, std::vector<std::string>* warnings);

// Whether a peer address (network byte order, IPv4 in the first word for
// AF_INET) is loopback: 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104.
bool IsLoopbackPeer(int family, const uint32_t addr[4]);

}  // namespace egressd::kernel
