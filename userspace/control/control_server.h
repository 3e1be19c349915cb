// The JSON control API on a unix socket (mode 0600: root only). One request
// per connection: a JSON object on one line, answered by one JSON line,
// {"ok":true,...} or {"ok":false,"error":"..."}. Bad requests are answered,
// counted, and change nothing.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "userspace/common/status.h"
#include "userspace/control/control_request.h"

namespace egressd::control {

// Who is asking: the process at the other end of the connection.
struct Peer {
  pid_t pid = 0;       // SO_PEERCRED, in the daemon's pid namespace; 0 if unknown
  std::string cgroup;  // its cgroup v2 path ("/egressd/run-1"), "" if unknown
};

// The peer of a connected unix socket. The cgroup is read through a pidfd
// (SO_PEERPIDFD) and only believed if the process still lives afterwards, so
// a reused pid cannot lend its cgroup to a process that has gone.
Peer IdentifyPeer(int fd);

class ControlServer {
 public:
  // Handles one parsed request from `peer`; returns the reply (without "ok").
  using Handler =
      std::function<StatusOr<nlohmann::json>(const ControlRequest& request, const Peer& peer)>;
  ControlServer(std::string socket_path, Handler handler);
  ~ControlServer();
  Status Start();
  void Stop();
  uint64_t bad_requests() const { return bad_requests_; }

 private:
  void Run();
  void Serve(int fd);

  std::string socket_path_;
  Handler handler_;
  int listen_fd_ = -1;
  dev_t bound_dev_ = 0;  // of the socket file we created
  ino_t bound_ino_ = 0;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bad_requests_{0};
  std::thread thread_;
};

}  // namespace egressd::control
