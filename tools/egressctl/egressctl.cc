// egressctl: the command line for egressd. Talks JSON to the daemon over its
// unix socket; `policy check` works offline.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "policy/policy_loader.h"
#include "tools/egressctl/control_client.h"
#include "tools/egressctl/rules_commands.h"
#include "tools/egressctl/run_command.h"
#include "tools/egressctl/secret_command.h"
#include "tools/egressctl/usage.h"
#include "userspace/common/version.h"

namespace {

using egressctl::Call;
using egressctl::Fail;
using egressctl::FullUsage;
using nlohmann::json;

constexpr const char* kDefaultSocket = "/run/egressd/egressd.sock";

struct Args {
  std::string socket;  // --socket, else $EGRESSD_SOCKET, else kDefaultSocket
  bool json = false;
  bool help = false;
  bool follow = false;
  std::string policy, instance, user, netns, host, params;
  std::vector<std::string> positional;
  std::vector<std::string> command;  // after "--"
};

bool LooksLikeFile(const std::string& policy) {
  auto ends_with = [&](const char* s) {
    size_t n = strlen(s);
    return policy.size() >= n && policy.compare(policy.size() - n, n, s) == 0;
  };
  return policy.find('/') != std::string::npos || ends_with(".yaml") || ends_with(".yml");
}

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

// --json: {"file", "ok", "errors": [{"line", "column", "message"}]} and, when
// ok, the policy's name, mode and counts.
int PolicyCheckJson(const std::string& file, const egressd::policy::LoadResult& result) {
  json out = {{"file", file}, {"ok", result.ok()}, {"errors", json::array()}};
  for (const auto& e : result.errors)
    out["errors"].push_back({{"line", e.line}, {"column", e.column}, {"message", e.message}});
  if (result.ok()) {
    const auto& p = *result.policy;
    out["policy"] = p.name;
    out["mode"] = p.mode == egressd::policy::PolicyMode::kAudit ? "audit" : "enforce";
    out["allowed_hosts"] = p.allowed_hosts.size();
    out["denied_hosts"] = p.denied_hosts.size();
    out["deny_cidrs"] = p.deny_cidrs.size();
    out["allow_tcp"] = p.allow_tcp.size();
    out["handlers"] = p.handlers.size();
    out["deny_by_default"] = !p.allowed_hosts.empty();
  }
  std::cout << out.dump() << "\n";
  return result.ok() ? 0 : 1;
}

int PolicyCheck(const std::string& file, bool as_json) {
  egressd::policy::LoadResult result = egressd::policy::LoadPolicyFile(file);
  if (as_json) return PolicyCheckJson(file, result);
  if (!result.ok()) {
    std::cerr << egressd::policy::FormatErrors(result.errors, file);
    return 1;
  }
  const auto& p = *result.policy;
  std::cout << file << ": ok: policy \"" << p.name << "\", " << p.allowed_hosts.size()
            << " allowed hosts, " << p.denied_hosts.size() << " denied hosts, "
            << p.deny_cidrs.size() << " denied CIDRs, " << p.allow_tcp.size()
            << " allow_tcp entries, " << p.allow_get_body.size() << " allow_get_body entries"
            << (p.allow_unnamed ? ", allow_unnamed" : "") << ", " << p.handlers.size()
            << " handlers, " << p.by_host.size() << " by_host bindings"
            << (p.catch_all ? ", catch_all " + p.catch_all->handler : "")
            << (p.allowed_hosts.empty() ? "" : " (deny by default)") << "\n";
  return 0;
}

void PrintEvent(const json& e, bool as_json) {
  if (as_json) {
    std::cout << e.dump() << "\n";
    return;
  }
  time_t secs = static_cast<time_t>(e["time_ms"].get<int64_t>() / 1000);
  char when[32];
  strftime(when, sizeof(when), "%F %T", localtime(&secs));
  std::string dst = e["address"].get<std::string>();
  if (dst.find(':') != std::string::npos) dst = "[" + dst + "]";
  if (!dst.empty()) dst += ":" + std::to_string(e["port"].get<int>());
  std::string host = e["host"].get<std::string>();
  std::cout << when << "  " << Pad(e["layer"], 7) << Pad(e["instance"], 20)
            << Pad(dst.empty() ? "-" : dst, 24) << Pad(host.empty() ? "-" : host, 24)
            << e["reason"].get<std::string>()
            << (e.value("enforced", true) ? "" : "  [audit mode: let through]") << "\n";
}

// One `events` call; with --follow, a daemon that stops answering (a
// restart) is waited for, up to kFollowRetrySeconds, instead of giving up.
json EventsCall(const Args& a, const json& request) {
  constexpr int kFollowRetrySeconds = 60;
  constexpr int kRetryMs = 250;
  std::string error;
  for (int waited_ms = 0;; waited_ms += kRetryMs) {
    if (auto reply = egressctl::TryCall(a.socket, request, &error)) {
      if (waited_ms > 0) std::cerr << "egressctl: egressd answers again; following its events\n";
      return *reply;
    }
    if (!a.follow || waited_ms >= kFollowRetrySeconds * 1000) Fail(error);
    if (waited_ms == 0)
      std::cerr << "egressctl: " << error << "; retrying for up to " << kFollowRetrySeconds
                << " s\n";
    usleep(kRetryMs * 1000);
  }
}

int Events(const Args& a) {
  uint64_t after = 0;
  std::string log_id;
  bool first = true;
  for (;;) {
    json req = {{"cmd", "events"}, {"after_seq", after}};
    if (!a.instance.empty()) req["instance"] = a.instance;
    json r = EventsCall(a, req);
    std::string id = r.value("log_id", std::string());
    if (!first && id != log_id) {
      // A restarted daemon numbers its events from 1 again: all of them are new.
      after = 0;
      req["after_seq"] = 0;
      r = EventsCall(a, req);
      id = r.value("log_id", std::string());
    }
    log_id = id;
    if (first && !a.json)
      std::cout << Pad("TIME", 21) << Pad("LAYER", 7) << Pad("INSTANCE", 20)
                << Pad("DESTINATION", 24) << Pad("HOST", 24) << "REASON\n";
    first = false;
    for (const auto& e : r["events"]) {
      PrintEvent(e, a.json);
      after = std::max(after, e["seq"].get<uint64_t>());
    }
    after = std::max(after, r["last_seq"].get<uint64_t>());
    std::cout.flush();
    if (!a.follow) return 0;
    usleep(500 * 1000);  // polling keeps the control API one-request-per-connection
  }
}

void PrintStats(const json& reply) {
  std::cout << Pad("INSTANCE", 20) << Pad("POLICY", 14) << Pad("CONNS", 8) << Pad("DENIED", 8)
            << Pad("REQ OK", 8) << Pad("REQ DENY", 9) << Pad("K-REDIR", 9) << Pad("K-DENY", 8)
            << Pad("UDP-DENY", 9) << Pad("SOCK-DENY", 10) << Pad("ESCAPE", 7) << Pad("DNS", 6)
            << Pad("DNS-NX", 7) << Pad("UP", 10) << "DOWN\n";
  for (const auto& s : reply["sandboxes"]) {
    const auto& k = s["kernel"];
    const auto& p = s["proxy"];
    auto n = [](const json& v) { return std::to_string(v.get<uint64_t>()); };
    // Escape attempts the kernel stopped: backstop drops and routing options.
    uint64_t escapes =
        k.value("egress_dropped", uint64_t{0}) + k.value("sockopt_denied", uint64_t{0});
    std::cout << Pad(s["instance"], 20) << Pad(s["policy"], 14) << Pad(n(p["connections"]), 8)
              << Pad(n(p["connections_denied"]), 8) << Pad(n(p["requests_allowed"]), 8)
              << Pad(n(p["requests_denied"]), 9) << Pad(n(k["connect_redirected"]), 9)
              << Pad(n(k["connect_denied"]), 8) << Pad(n(k["udp_denied"]), 9)
              << Pad(n(k["socket_denied"]), 10) << Pad(std::to_string(escapes), 7)
              << Pad(n(s["dns"]["queries"]), 6) << Pad(n(s["dns"]["refused"]), 7)
              << Pad(n(p["bytes_up"]), 10) << n(p["bytes_down"]) << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (const char* env = getenv("EGRESSD_SOCKET"); env && *env) a.socket = env;
  if (a.socket.empty()) a.socket = kDefaultSocket;
  std::vector<std::string> argv_rest(argv + 1, argv + argc);
  for (size_t i = 0; i < argv_rest.size(); ++i) {
    const std::string& arg = argv_rest[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argv_rest.size()) Fail(std::string(flag) + " needs a value", 2);
      return argv_rest[++i];
    };
    if (arg == "-h" || arg == "--help") {
      a.help = true;  // this command's usage, once the command is known
    } else if (arg == "--version") {
      std::cout << "egressctl " << egressd::kVersion << "\n";
      return 0;
    } else if (arg == "--socket") {
      a.socket = value("--socket");
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--follow") {
      a.follow = true;
    } else if (arg == "--policy") {
      a.policy = value("--policy");
    } else if (arg == "--instance") {
      a.instance = value("--instance");
    } else if (arg == "--user") {
      a.user = value("--user");
    } else if (arg == "--netns") {
      a.netns = value("--netns");
    } else if (arg == "--host") {
      a.host = value("--host");
    } else if (arg == "--params") {
      a.params = value("--params");
    } else if (arg == "--") {
      a.command.assign(argv_rest.begin() + static_cast<long>(i) + 1, argv_rest.end());
      break;
    } else if (arg.size() > 1 && arg[0] == '-') {
      // Not echoed after `secret`: it may be a value typed where it does not belong.
      bool secret = !a.positional.empty() && a.positional[0] == "secret";
      std::string usage = a.positional.empty() || !egressctl::CommandUsage(a.positional[0])
                              ? FullUsage()
                              : egressctl::CommandUsage(a.positional[0]);
      Fail("unknown option " + (secret ? std::string("(not shown)") : arg) + "\n" + usage, 2);
    } else {
      a.positional.push_back(arg);
    }
  }
  if (a.help) {
    const char* usage = a.positional.empty() ? nullptr : egressctl::CommandUsage(a.positional[0]);
    std::cout << (usage ? usage : FullUsage());
    return 0;
  }
  if (a.positional.empty()) {
    std::cerr << FullUsage();
    return 2;
  }
  const std::string& cmd = a.positional[0];
  auto need = [&](size_t n, const char* usage) {
    if (a.positional.size() != n) Fail(std::string("usage: egressctl ") + usage, 2);
  };
  if (!a.command.empty() && cmd != "run") Fail("\"--\" only goes with run", 2);
  auto policy_request = [&](json* req) {
    if (LooksLikeFile(a.policy)) {
      std::error_code ec;
      (*req)["policy_file"] = std::filesystem::absolute(a.policy, ec).string();
    } else {
      (*req)["policy"] = a.policy;
    }
  };

  if (cmd == "run") {
    if (a.json) Fail("run prints nothing of its own (stdout is the command's): no --json", 2);
    if (a.positional.size() != 1 || a.command.empty())
      Fail(
          "usage: egressctl run --policy NAME|FILE [--instance ID] [--user USER] "
          "[--netns new|host] -- CMD [ARGS...]",
          2);
    egressctl::RunOptions run;
    run.socket = a.socket;
    run.policy = a.policy;
    run.policy_is_file = LooksLikeFile(a.policy);
    if (run.policy_is_file) {
      std::error_code ec;
      run.policy = std::filesystem::absolute(a.policy, ec).string();
    }
    run.instance = a.instance;
    run.user = a.user;
    if (!a.netns.empty()) run.netns = a.netns;
    run.command = a.command;
    return egressctl::RunCommand(run);
  }
  if (!a.user.empty()) Fail("--user only goes with run", 2);
  if (cmd == "handler" || cmd == "hosts") {
    egressctl::RulesArgs rules{a.socket, a.positional, a.host, a.params, a.json};
    return cmd == "handler" ? egressctl::HandlerCommand(rules) : egressctl::HostsCommand(rules);
  }
  if (!a.host.empty() || !a.params.empty()) Fail("--host and --params only go with handler", 2);

  if (cmd == "secret") {
    if (!a.policy.empty() || !a.netns.empty() || a.follow)
      Fail("secret takes only --instance ID (and --json for list)", 2);
    return egressctl::SecretCommand(
        {.socket = a.socket,
         .instance = a.instance,
         .json = a.json,
         .args = std::vector<std::string>(a.positional.begin() + 1, a.positional.end())});
  }

  if (cmd == "policy") {
    if (a.positional.size() >= 2 && a.positional[1] == "check") {
      need(3, "policy check FILE [--json]");
      return PolicyCheck(a.positional[2], a.json);
    }
    if (a.positional.size() >= 2 && a.positional[1] == "reload") {
      need(2, "policy reload [--json]");
      json r = Call(a.socket, {{"cmd", "policy_reload"}});
      if (a.json) {
        std::cout << r.dump() << "\n";
        return 0;
      }
      std::cout << "reloaded " << r["reloaded"] << " sandbox policies\n";
      return 0;
    }
    if (a.positional.size() >= 2 && a.positional[1] == "suggest") {
      need(2, "policy suggest --instance ID");
      if (a.instance.empty()) Fail("policy suggest: --instance ID is required", 2);
      json r = Call(a.socket, {{"cmd", "policy_suggest"}, {"instance", a.instance}});
      if (a.json) {
        std::cout << r.dump() << "\n";  // {"policy": the YAML text}
        return 0;
      }
      std::cout << r["policy"].get<std::string>();
      return 0;
    }
    Fail("usage: egressctl policy check FILE | policy reload | policy suggest --instance ID", 2);
  }
  if (cmd == "status") {
    need(1, "status [--json]");
    json r = Call(a.socket, {{"cmd", "status"}});
    std::cout << (a.json ? r.dump() : r.dump(2)) << "\n";
    return 0;
  }
  if (cmd == "attach") {
    need(2, "attach CGROUP --policy NAME|FILE [--instance ID] [--netns PATH|host]");
    if (a.policy.empty()) Fail("attach: --policy NAME|FILE is required", 2);
    json req = {{"cmd", "attach"}, {"cgroup", a.positional[1]}};
    policy_request(&req);
    if (!a.instance.empty()) req["instance"] = a.instance;
    if (!a.netns.empty()) {
      std::error_code ec;
      req["netns"] = a.netns == "host" ? a.netns : std::filesystem::absolute(a.netns, ec).string();
    }
    json r = Call(a.socket, req);
    for (const auto& w : r.value("warnings", json::array()))
      std::cerr << "egressctl: warning: " << w.get<std::string>() << "\n";
    if (a.json) {
      std::cout << r.dump() << "\n";
    } else {
      std::cout << (r.value("switched", false) ? "switched " : "attached ")
                << r["cgroup"].get<std::string>() << " (instance "
                << r["instance"].get<std::string>() << ") to policy "
                << r["policy"].get<std::string>() << "\n";
      if (uint64_t n = r.value("sockets_closed", uint64_t{0}))
        std::cout << "closed " << n << " socket(s) opened before attach (peer not loopback)\n";
      if (uint64_t n = r.value("sockets_left_open", uint64_t{0}))
        std::cout << "audit mode: left open " << n
                  << " socket(s) opened before attach (peer not loopback)\n";
    }
    return 0;
  }
  if (cmd == "detach") {
    need(2, "detach CGROUP|INSTANCE [--json]");
    json r = Call(a.socket, {{"cmd", "detach"}, {"cgroup", a.positional[1]}});
    if (a.json) {
      r["detached"] = a.positional[1];
      std::cout << r.dump() << "\n";
      return 0;
    }
    std::cout << "detached " << a.positional[1] << "\n";
    return 0;
  }
  if (cmd == "list") {
    need(1, "list [--json]");
    json r = Call(a.socket, {{"cmd", "list"}});
    if (a.json) {
      std::cout << r.dump() << "\n";
      return 0;
    }
    std::cout << Pad("ID", 5) << Pad("INSTANCE", 24) << Pad("POLICY", 16) << Pad("MODE", 8)
              << Pad("NETNS", 6) << "CGROUP\n";
    for (const auto& s : r["sandboxes"])
      std::cout << Pad(std::to_string(s["id"].get<int>()), 5) << Pad(s["instance"], 24)
                << Pad(s["policy"], 16) << Pad(s["mode"], 8)
                << Pad(s["netns"].get<std::string>() == "host" ? "host" : "own", 6)
                << s["cgroup"].get<std::string>()
                << (s["problem"].get<std::string>().empty()
                        ? ""
                        : "  (" + s["problem"].get<std::string>() + ")")
                << "\n";
    return 0;
  }
  if (cmd == "events") {
    need(1, "events [--follow] [--json] [--instance ID]");
    return Events(a);
  }
  if (cmd == "ca") {
    need(2, "ca INSTANCE [--json]");
    json r = Call(a.socket, {{"cmd", "ca"}, {"instance", a.positional[1]}});
    if (a.json) {
      std::cout << r.dump() << "\n";
    } else {
      std::cout << r["certificate"].get<std::string>();
    }
    return 0;
  }
  if (cmd == "stats") {
    if (a.positional.size() > 2) Fail("usage: egressctl stats [CGROUP|INSTANCE] [--json]", 2);
    json req = {{"cmd", "stats"}};
    if (a.positional.size() == 2) req["target"] = a.positional[1];
    json r = Call(a.socket, req);
    if (a.json) {
      std::cout << r.dump() << "\n";
    } else {
      PrintStats(r);
    }
    return 0;
  }
  Fail("unknown command \"" + cmd + "\"\n" + FullUsage(), 2);
}
