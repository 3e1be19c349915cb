#include "userspace/control/control_server.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace egressd::control {
namespace {

constexpr size_t kMaxRequestBytes = 1 << 20;
constexpr int kClientTimeoutMs = 5000;

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; older libc headers lack it
#endif

}  // namespace

Peer IdentifyPeer(int fd) {
  Peer peer;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0) return peer;
  int pidfd = -1;
  len = sizeof(pidfd);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) != 0 || pidfd < 0) {
    // Before Linux 6.5: a pidfd opened now. The peer is blocked waiting for
    // our answer, so its pid is still its own unless it died already, which
    // the check below catches from here on.
    pidfd = static_cast<int>(syscall(SYS_pidfd_open, cred.pid, 0));
    if (pidfd < 0) return peer;
  }
  std::ifstream in("/proc/" + std::to_string(cred.pid) + "/cgroup");
  std::string cgroup;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) cgroup = line.substr(3);
  // A pidfd turns readable when its process exits: if it has, the pid (and
  // the cgroup just read) may be someone else's.
  pollfd pfd{pidfd, POLLIN, 0};
  bool exited = poll(&pfd, 1, 0) != 0;
  close(pidfd);
  if (exited || cgroup.empty()) return peer;
  peer.pid = cred.pid;
  peer.cgroup = cgroup;
  return peer;
}

ControlServer::ControlServer(std::string socket_path, Handler handler)
    : socket_path_(std::move(socket_path)), handler_(std::move(handler)) {}

ControlServer::~ControlServer() {
  Stop();
}

Status ControlServer::Start() {
  sockaddr_un addr{};
  if (socket_path_.size() >= sizeof(addr.sun_path))
    return EGRESSD_ERROR("socket path too long: {}", socket_path_);
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(socket_path_).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  // A stale socket from a previous run: refuse if a daemon still answers on it.
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size());
  if (connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    close(probe);
    return EGRESSD_ERROR("another egressd is serving {}", socket_path_);
  }
  close(probe);
  unlink(socket_path_.c_str());
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return EGRESSD_ERROR("control socket: {}", strerror(errno));
  mode_t old = umask(0177);  // the socket is created 0600
  int rc = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc != 0) return EGRESSD_ERROR("bind {}: {}", socket_path_, strerror(errno));
  chmod(socket_path_.c_str(), 0600);
  struct stat bound {};
  if (stat(socket_path_.c_str(), &bound) == 0) {
    bound_dev_ = bound.st_dev;
    bound_ino_ = bound.st_ino;
  }
  if (listen(listen_fd_, 64) != 0)
    return EGRESSD_ERROR("listen {}: {}", socket_path_, strerror(errno));
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  thread_ = std::thread([this] { Run(); });
  return {};
}

void ControlServer::Stop() {
  if (stop_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    // Only our own socket: the path may be another daemon's by now.
    struct stat now {};
    if (stat(socket_path_.c_str(), &now) == 0 && now.st_dev == bound_dev_ &&
        now.st_ino == bound_ino_)
      unlink(socket_path_.c_str());
  }
  if (wake_fd_ >= 0) close(wake_fd_);
}

void ControlServer::Run() {
  while (!stop_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (stop_) break;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of fds or memory: the client waits in the backlog; no busy loop.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        poll(nullptr, 0, 100);
      continue;
    }
    Serve(fd);
    close(fd);
  }
}

void ControlServer::Serve(int fd) {
  timeval tv{kClientTimeoutMs / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string request;
  char buf[4096];
  bool complete = false;
  while (request.size() < kMaxRequestBytes) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
      complete = n == 0 && !request.empty();
      break;
    }
    request.append(buf, static_cast<size_t>(n));
    if (request.find('\n') != std::string::npos) {
      request.resize(request.find('\n'));
      complete = true;
      break;
    }
  }
  nlohmann::json reply;
  if (!complete) {
    reply = {{"ok", false}, {"error", "request incomplete, too large or timed out"}};
    bad_requests_++;
  } else {
    StatusOr<ControlRequest> parsed = ParseControlRequest(request);
    if (!parsed.ok()) {
      reply = {{"ok", false}, {"error", parsed.status().message()}};
      bad_requests_++;
    } else {
      StatusOr<nlohmann::json> result = EGRESSD_ERROR("internal error");
      try {
        result = handler_(*parsed, IdentifyPeer(fd));
      } catch (const std::exception& e) {
        result = EGRESSD_ERROR("bad request: {}", e.what());
      }
      if (result.ok()) {
        reply = std::move(result.value());
        reply["ok"] = true;
      } else {
        reply = {{"ok", false}, {"error", result.status().message()}};
        bad_requests_++;
        spdlog::info("control: refused {}: {}", parsed->cmd.empty() ? "?" : parsed->cmd,
                     result.status().ToString());
      }
    }
  }
  std::string out = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = write(fd, out.data() + sent, out.size() - sent);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace egressd::control
