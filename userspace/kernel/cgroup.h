// Finding cgroups: the cgroup v2 mount, a sandbox cgroup's directory and id.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "userspace/common/status.h"

namespace egressd::kernel {

// The first cgroup2 mount in /proc/self/mounts (e.g. /sys/fs/cgroup/unified).
StatusOr<std::string> FindCgroup2Mount();

struct CgroupRef {
  std::string path;  // absolute, normalized directory path
  uint64_t id = 0;   // the kernel's cgroup id (the directory's inode number on cgroup2)
};

// Accepts an absolute directory path on a cgroup2 mount, or a path relative to
// `cgroup2_mount`. Refuses anything that is not a cgroup2 directory.
StatusOr<CgroupRef> ResolveCgroup(const std::string& spec, const std::string& cgroup2_mount);

}  // namespace egressd::kernel

namespace egressd::kernel {

// Kills every process of the cgroup and its descendants (cgroup.kill) and
// waits, up to `timeout_ms`, until the kernel reports it empty.
Status KillCgroup(const std::string& path, int timeout_ms);

// Removes the (empty) cgroup and its descendant cgroups, deepest first.
Status RemoveCgroupTree(const std::string& path);

// The cgroup's directory and those of its descendants (a snapshot).
std::vector<std::string> CgroupTree(const std::string& path);

// The processes of the cgroup and its descendants (a snapshot).
std::vector<int> CgroupProcesses(const std::string& path);

}  // namespace egressd::kernel
