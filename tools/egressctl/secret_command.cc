#include "tools/egressctl/secret_command.h"

#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "tools/egressctl/control_client.h"

namespace egressctl {
namespace {

using nlohmann::json;

// The daemon's bound (userspace/secrets/secret_store.h kMaxSecretBytes).
constexpr size_t kMaxSecretBytes = 64 * 1024;

constexpr const char* kSecretUsage =
    "usage: egressctl secret set NAME [--instance ID]   (the value on stdin)\n"
    "       egressctl secret rm NAME [--instance ID]\n"
    "       egressctl secret list [--instance ID] [--json]";

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

// Turns the terminal's echo off while a value is typed.
class NoEcho {
 public:
  NoEcho() {
    if (tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    active_ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  ~NoEcho() {
    if (active_) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

// stdin up to EOF (a terminal: one line, typed without echo), one trailing
// newline stripped. Errors never show the value.
std::string ReadValue(const std::string& name) {
  std::string value;
  char buf[4096];
  const bool terminal = isatty(STDIN_FILENO);
  std::optional<NoEcho> quiet;
  if (terminal) {
    quiet.emplace();  // before the prompt: nothing typed after it is echoed
    std::cerr << "value of secret " << name << " (not shown; Enter ends it): " << std::flush;
  }
  while (value.size() <= kMaxSecretBytes + 1) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) Fail(std::string("cannot read the value from stdin: ") + strerror(errno));
    if (n == 0) break;
    value.append(buf, static_cast<size_t>(n));
    if (terminal && value.find('\n') != std::string::npos) {
      value.resize(value.find('\n') + 1);
      break;
    }
  }
  if (terminal) {
    quiet.reset();
    std::cerr << "\n";
  }
  if (!value.empty() && value.back() == '\n') value.pop_back();
  if (value.size() > kMaxSecretBytes)
    Fail("secret " + name + ": the value on stdin is longer than " +
             std::to_string(kMaxSecretBytes) + " bytes",
         2);
  try {
    (void)json(value).dump();  // the request is JSON: text only
  } catch (const json::exception&) {
    Fail("secret " + name + ": the value on stdin is not UTF-8 text", 2);
  }
  if (value.empty())
    Fail("secret " + name +
             ": no value on stdin (e.g. printf %s \"$TOKEN\" | egressctl secret set " + name + ")",
         2);
  return value;
}

std::string FormatTime(int64_t epoch_seconds) {
  time_t secs = static_cast<time_t>(epoch_seconds);
  char when[32];
  strftime(when, sizeof(when), "%F %T", localtime(&secs));
  return when;
}

void PrintList(const json& reply) {
  std::cout << Pad("NAME", 24) << Pad("SCOPE", 24) << Pad("CHANGED", 21) << "USABLE/PROBLEM\n";
  for (const auto& s : reply["secrets"]) {
    std::string scope = s["scope"].get<std::string>();
    if (s.contains("instance")) scope += " " + s["instance"].get<std::string>();
    std::cout << Pad(s["name"], 24) << Pad(scope, 24)
              << Pad(FormatTime(s["changed"].get<int64_t>()), 21)
              << (s["usable"].get<bool>() ? "yes" : "no: " + s.value("problem", std::string()))
              << "\n";
  }
  for (const auto& problem : reply.value("problems", json::array()))
    std::cerr << "egressctl: problem: " << problem.get<std::string>() << "\n";
}

}  // namespace

int SecretCommand(const SecretArgs& a) {
  const std::string verb = a.args.empty() ? "" : a.args[0];
  json request;
  if (!a.instance.empty()) request["instance"] = a.instance;
  if (verb == "list") {
    if (a.args.size() != 1) Fail(kSecretUsage, 2);
    request["cmd"] = "secret_list";
    json r = Call(a.socket, request);
    if (a.json) {
      std::cout << r.dump() << "\n";
    } else {
      PrintList(r);
    }
    return 0;
  }
  if (verb != "set" && verb != "rm") Fail(kSecretUsage, 2);
  if (a.json) Fail("--json only goes with secret list", 2);
  if (a.args.size() < 2) Fail(kSecretUsage, 2);
  const std::string& name = a.args[1];
  if (verb == "set" && a.args.size() > 2)
    // Not echoed: the extra argument is likely the value itself.
    Fail(
        "secret set takes the value on stdin, never as an argument (ps and shell history "
        "would show it): printf %s \"$TOKEN\" | egressctl secret set " +
            name,
        2);
  if (a.args.size() != 2) Fail(kSecretUsage, 2);
  request["name"] = name;
  if (verb == "rm") {
    request["cmd"] = "secret_rm";
    Call(a.socket, request);
    std::cout << "removed secret " << name
              << (a.instance.empty() ? "" : " of instance " + a.instance) << "\n";
    return 0;
  }
  request["cmd"] = "secret_set";
  request["value"] = ReadValue(name);
  Call(a.socket, request);
  std::cout << "set secret " << name
            << (a.instance.empty() ? " (every instance)" : " for instance " + a.instance) << "\n";
  return 0;
}

}  // namespace egressctl
