#include "userspace/kernel/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace egressd::kernel {
namespace {

Status BringLoopbackUp() {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return EGRESSD_ERROR("socket in namespace: {}", strerror(errno));
  ifreq req{};
  strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(fd.get(), SIOCGIFFLAGS, &req) != 0)
    return EGRESSD_ERROR("lo flags: {}", strerror(errno));
  if (req.ifr_flags & IFF_UP) return {};
  req.ifr_flags |= IFF_UP;
  if (ioctl(fd.get(), SIOCSIFFLAGS, &req) != 0)
    return EGRESSD_ERROR("bringing lo up: {}", strerror(errno));
  return {};
}

}  // namespace

StatusOr<UniqueFd> OpenNetns(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return EGRESSD_ERROR("network namespace {}: {}", path, strerror(errno));
  int type = ioctl(fd.get(), NS_GET_NSTYPE);
  if (type != CLONE_NEWNET)
    return EGRESSD_ERROR(
        "{} is not a network namespace (expected /proc/PID/ns/net or "
        "/run/netns/NAME)",
        path);
  return fd;
}

StatusOr<bool> IsOwnNetns(int netns_fd) {
  struct stat theirs {};
  struct stat ours {};
  if (fstat(netns_fd, &theirs) != 0 || stat("/proc/self/ns/net", &ours) != 0)
    return EGRESSD_ERROR("comparing network namespaces: {}", strerror(errno));
  return theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino;
}

Status RunInNetns(int netns_fd, const std::function<Status()>& fn, Loopback loopback) {
  // setns() changes only the calling thread; a thread of its own keeps the
  // daemon's other threads (and this one's caller) where they are.
  Status result;
  std::thread t([&] {
    if (setns(netns_fd, CLONE_NEWNET) != 0) {
      result = EGRESSD_ERROR("entering network namespace: {}", strerror(errno));
      return;
    }
    if (loopback == Loopback::kBringUp) result = BringLoopbackUp();
    if (result.ok()) result = fn();
  });
  t.join();
  return result;
}

Status PinNetns(int netns_fd, const std::string& path) {
  UniqueFd file(open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!file.valid()) return EGRESSD_ERROR("{}: {}", path, strerror(errno));
  std::string source = "/proc/self/fd/" + std::to_string(netns_fd);
  if (mount(source.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    int err = errno;
    unlink(path.c_str());
    return EGRESSD_ERROR("bind-mounting the network namespace at {}: {}", path, strerror(err));
  }
  return {};
}

void UnpinNetns(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
    spdlog::warn("unmounting {}: {}", path, strerror(errno));
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    spdlog::warn("removing {}: {}", path, strerror(errno));
}

StatusOr<DetectedNetns> DetectCgroupNetns(const std::string& cgroup_dir) {
  struct stat ours {};
  if (stat("/proc/self/ns/net", &ours) != 0)
    return EGRESSD_ERROR("/proc/self/ns/net: {}", strerror(errno));
  DetectedNetns found;
  struct stat found_st {};
  bool any_own = false;
  std::error_code ec;
  std::vector<std::string> dirs = {cgroup_dir};
  for (std::filesystem::recursive_directory_iterator it(cgroup_dir, ec), end; !ec && it != end;
       it.increment(ec))
    if (it->is_directory()) dirs.push_back(it->path());
  if (ec) return EGRESSD_ERROR("{}: {}", cgroup_dir, ec.message());
  for (const std::string& dir : dirs) {
    std::ifstream procs(dir + "/cgroup.procs");
    pid_t pid;
    while (procs >> pid) {
      std::string ns = "/proc/" + std::to_string(pid) + "/ns/net";
      // Opened, not just looked at: a pid reused later cannot change the answer.
      UniqueFd fd(open(ns.c_str(), O_RDONLY | O_CLOEXEC));
      struct stat st {};
      if (!fd.valid() || fstat(fd.get(), &st) != 0) continue;  // exited meanwhile
      if (st.st_dev == ours.st_dev && st.st_ino == ours.st_ino) {
        any_own = true;
      } else if (!found.fd.valid()) {
        found.fd = std::move(fd);
        found.source = ns;
        found_st = st;
      } else if (st.st_dev != found_st.st_dev || st.st_ino != found_st.st_ino) {
        return EGRESSD_ERROR(
            "the processes of {} are in several network namespaces; pass --netns PATH or "
            "--netns host",
            cgroup_dir);
      }
    }
  }
  if (found.fd.valid() && any_own)
    return EGRESSD_ERROR(
        "some processes of {} share the daemon's network namespace and some do not; pass "
        "--netns PATH or --netns host",
        cgroup_dir);
  return found;
}

}  // namespace egressd::kernel
