#include "userspace/kernel/cgroup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "userspace/common/unique_fd.h"

namespace egressd::kernel {

StatusOr<std::string> FindCgroup2Mount() {
  std::ifstream mounts("/proc/self/mounts");
  if (!mounts) return EGRESSD_ERROR("cannot read /proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, dir, type;
    fields >> device >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  return EGRESSD_ERROR("no cgroup2 filesystem is mounted (egressd needs cgroup v2)");
}

StatusOr<CgroupRef> ResolveCgroup(const std::string& spec, const std::string& cgroup2_mount) {
  if (spec.empty()) return EGRESSD_ERROR("empty cgroup path");
  std::filesystem::path p(spec);
  if (p.is_relative()) p = std::filesystem::path(cgroup2_mount) / p;
  std::error_code ec;
  std::filesystem::path canonical = std::filesystem::canonical(p, ec);
  if (ec) return EGRESSD_ERROR("cgroup {}: {}", p.string(), ec.message());
  struct statfs fs {};
  if (statfs(canonical.c_str(), &fs) != 0)
    return EGRESSD_ERROR("cgroup {}: {}", canonical.string(), strerror(errno));
  if (fs.f_type != CGROUP2_SUPER_MAGIC)
    return EGRESSD_ERROR("{} is not on a cgroup v2 filesystem", canonical.string());
  struct stat st {};
  if (stat(canonical.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return EGRESSD_ERROR("{} is not a cgroup directory", canonical.string());
  return CgroupRef{canonical.string(), static_cast<uint64_t>(st.st_ino)};
}

}  // namespace egressd::kernel

namespace egressd::kernel {
namespace {

// Whether cgroup.events says "populated 1"; errors count as empty (gone).
bool Populated(const std::string& path) {
  std::ifstream events(path + "/cgroup.events");
  std::string key;
  int value = 0;
  while (events >> key >> value)
    if (key == "populated") return value != 0;
  return false;
}

}  // namespace

Status KillCgroup(const std::string& path, int timeout_ms) {
  {
    std::ofstream kill(path + "/cgroup.kill");
    kill << "1\n";
    kill.flush();
    if (!kill) return EGRESSD_ERROR("{}/cgroup.kill: cannot write", path);
  }
  // cgroup.events signals POLLPRI on every change of "populated".
  UniqueFd events(open((path + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Populated(path)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return EGRESSD_ERROR("{}: processes still alive after cgroup.kill", path);
    pollfd pfd{events.get(), POLLPRI, 0};
    // Bounded slices: a change between the read and the poll is not missed for long.
    poll(&pfd, 1, static_cast<int>(std::min<long>(left, 100)));
  }
  return {};
}

std::vector<std::string> CgroupTree(const std::string& path) {
  std::vector<std::string> dirs = {path};
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(path, ec), end; !ec && it != end;
       it.increment(ec))
    if (it->is_directory()) dirs.push_back(it->path());
  return dirs;
}

std::vector<int> CgroupProcesses(const std::string& path) {
  std::vector<int> pids;
  for (const auto& dir : CgroupTree(path)) {
    std::ifstream procs(dir + "/cgroup.procs");
    for (int pid; procs >> pid;) pids.push_back(pid);
  }
  return pids;
}

Status RemoveCgroupTree(const std::string& path) {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(path, ec), end; !ec && it != end;
       it.increment(ec))
    if (it->is_directory()) dirs.push_back(it->path());
  std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a > b; });
  dirs.push_back(path);
  for (const auto& dir : dirs)
    if (rmdir(dir.c_str()) != 0 && errno != ENOENT)
      return EGRESSD_ERROR("removing cgroup {}: {}", dir, strerror(errno));
  return {};
}

}  // namespace egressd::kernel
