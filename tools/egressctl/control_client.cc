#include "tools/egressctl/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

namespace egressctl {

using nlohmann::json;

void Fail(const std::string& message, int code) {
  std::cerr << "egressctl: " << message << "\n";
  exit(code);
}

std::optional<json> TryCall(const std::string& socket_path, const json& request,
                            std::string* error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    *error = "socket path too long: " + socket_path;
    return std::nullopt;
  }
  memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    *error = "cannot reach egressd at " + socket_path + ": " + strerror(errno) +
             " (is it running? are you root?)";
    if (fd >= 0) close(fd);
    return std::nullopt;
  }
  std::string out = request.dump() + "\n";
  if (write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
    *error = std::string("cannot send the request: ") + strerror(errno);
    close(fd);
    return std::nullopt;
  }
  std::string reply;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  json parsed = json::parse(reply, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    *error = "egressd sent an unreadable reply";
    return std::nullopt;
  }
  if (!parsed.value("ok", false)) {
    *error = parsed.value("error", std::string("request failed"));
    return std::nullopt;
  }
  parsed.erase("ok");
  return parsed;
}

json Call(const std::string& socket_path, const json& request) {
  std::string error;
  auto reply = TryCall(socket_path, request, &error);
  if (!reply) Fail(error);
  return *reply;
}

}  // namespace egressctl
