#include "userspace/daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace egressd::daemon {
namespace {

std::string Holder(pid_t pid) {
  return pid > 0 ? fmt::format("another egressd (pid {})", pid) : std::string("another egressd");
}

// flock(LOCK_EX | LOCK_NB) on `fd`; `what` names the locked thing in errors.
Status Lock(int fd, const std::string& what, const char* flag) {
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return {};
  if (errno != EWOULDBLOCK) return EGRESSD_ERROR("cannot lock {}: {}", what, strerror(errno));
  return EGRESSD_ERROR(
      "{} is using {} (locked); stop it first, or give this one another {}: nothing was changed",
      Holder(FlockHolder(fd)), what, flag);
}

}  // namespace

pid_t FlockHolder(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return 0;
  // "1: FLOCK  ADVISORY  WRITE 1234 00:27:35627 0 EOF"; waiters ("1: -> FLOCK ...") hold nothing.
  std::string id = fmt::format("{:02x}:{:02x}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
  std::ifstream locks("/proc/locks");
  for (std::string line; std::getline(locks, line);) {
    std::istringstream fields(line);
    std::string number, type, mode, access, pid, file;
    fields >> number >> type;
    if (type == "->") continue;
    fields >> mode >> access >> pid >> file;
    if (type == "FLOCK" && file == id)
      return static_cast<pid_t>(std::strtol(pid.c_str(), nullptr, 10));
  }
  return 0;
}

Status InstanceLock::LockStateDir(const std::string& state_dir) {
  std::string path = state_dir + "/egressd.lock";
  state_lock_ = UniqueFd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!state_lock_.valid()) return EGRESSD_ERROR("cannot open {}: {}", path, strerror(errno));
  EGRESSD_RETURN_IF_ERROR(Lock(state_lock_.get(), "state dir " + state_dir, "--state-dir"));
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(state_lock_.get(), 0) != 0 ||
      pwrite(state_lock_.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    return EGRESSD_ERROR("cannot write {}: {}", path, strerror(errno));
  return {};
}

Status InstanceLock::LockBpffs(const std::string& bpffs_dir) {
  bpffs_lock_ = UniqueFd(open(bpffs_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!bpffs_lock_.valid()) return EGRESSD_ERROR("cannot open {}: {}", bpffs_dir, strerror(errno));
  return Lock(bpffs_lock_.get(), "bpffs " + bpffs_dir, "--bpffs");
}

Status CheckSocketUnused(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return EGRESSD_ERROR("socket path too long: {}", path);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.c_str(), path.size());
  UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return EGRESSD_ERROR("socket: {}", strerror(errno));
  if (connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  ucred cred{};
  socklen_t len = sizeof(cred);
  pid_t pid = getsockopt(probe.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
  return EGRESSD_ERROR(
      "{} answers on the control socket {}; stop it first, or give this one another --socket: "
      "nothing was changed",
      Holder(pid), path);
}

}  // namespace egressd::daemon
