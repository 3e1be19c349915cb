// One egressd per state dir and per bpffs directory. A second daemon started
// on either would rewrite the first one's maps and sandbox config; it takes
// these locks before touching anything and stops, naming the holder's pid.
//
// The locks are flock(2) locks, released by the kernel when the holder dies
// (no stale lock after a crash). The state dir's is a file, egressd.lock,
// holding the pid. bpffs allows no regular files (open(O_CREAT) is EPERM), so
// the bpffs lock is taken on the pin directory itself (flock on its fd).
// Either way the holder's pid is read from /proc/locks.
#pragma once

#include <string>

#include "userspace/common/status.h"
#include "userspace/common/unique_fd.h"

namespace egressd::daemon {

class InstanceLock {
 public:
  // Locks the state dir (which must exist), writing our pid in egressd.lock.
  Status LockStateDir(const std::string& state_dir);
  // Locks the bpffs pin directory (which must exist).
  Status LockBpffs(const std::string& bpffs_dir);

 private:
  UniqueFd state_lock_;
  UniqueFd bpffs_lock_;
};

// The pid holding a flock(2) lock on the file `fd` refers to, 0 if unknown.
pid_t FlockHolder(int fd);

// Refuses when a live daemon answers on the control socket `path`; the
// error names its pid.
Status CheckSocketUnused(const std::string& path);

}  // namespace egressd::daemon
