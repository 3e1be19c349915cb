#include "userspace/kernel/cgroup.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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
