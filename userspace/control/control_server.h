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

namespace egressd::control {

class ControlServer {
 public:
  // Handles one parsed request from process `peer_pid` (SO_PEERCRED, in the
  // daemon's pid namespace; 0 if unknown); returns the reply (without "ok").
  using Handler =
      std::function<StatusOr<nlohmann::json>(const nlohmann::json& request, pid_t peer_pid)>;
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
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bad_requests_{0};
  std::thread thread_;
};

}  // namespace egressd::control
