#include "tools/egressctl/rules_commands.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/egressctl/control_client.h"

namespace egressctl {
namespace {

using nlohmann::json;

constexpr const char* kHandlerUsage =
    "usage: egressctl handler set INSTANCE NAME [--host GLOB] [--params JSON]\n"
    "       egressctl handler clear INSTANCE [--host GLOB]\n"
    "       egressctl handler list INSTANCE [--json]";
constexpr const char* kHostsUsage =
    "usage: egressctl hosts allow|deny|remove INSTANCE GLOB...\n"
    "       egressctl hosts clear INSTANCE\n"
    "       egressctl hosts list INSTANCE [--json]";

void PrintWarnings(const json& reply) {
  for (const auto& w : reply.value("warnings", json::array()))
    std::cerr << "egressctl: warning: " << w.get<std::string>() << "\n";
}

std::string Joined(const json& list) {
  std::string out;
  for (const auto& entry : list) out += (out.empty() ? "" : ", ") + entry.get<std::string>();
  return out.empty() ? "-" : out;
}

void PrintBindings(const json& reply) {
  std::cout << "instance " << reply["instance"].get<std::string>() << ", policy "
            << reply["policy"].get<std::string>() << " (first match wins, top to bottom)\n";
  if (reply["bindings"].empty()) {
    std::cout << "  no handlers bound: requests are decided by the host lists alone\n";
    return;
  }
  for (const auto& b : reply["bindings"]) {
    std::string where =
        b["kind"] == "by_host" ? "host " + b["host"].get<std::string>() : "catch-all";
    std::cout << "  " << b["level"].get<std::string>() << "  " << where << " -> "
              << b["handler"].get<std::string>();
    if (!b["params"].empty()) std::cout << " " << b["params"].dump();
    if (b.contains("problem")) std::cout << "  (" << b["problem"].get<std::string>() << ")";
    std::cout << "\n";
  }
}

void PrintHostLists(const json& reply) {
  std::cout << "instance " << reply["instance"].get<std::string>() << ", policy "
            << reply["policy"].get<std::string>()
            << (reply["deny_by_default"].get<bool>() ? " (deny by default)" : "") << "\n"
            << "  allowed (instance): " << Joined(reply["allowed_hosts"]) << "\n"
            << "  denied  (instance): " << Joined(reply["denied_hosts"]) << "\n"
            << "  allowed (policy):   " << Joined(reply["policy_allowed_hosts"]) << "\n"
            << "  denied  (policy):   " << Joined(reply["policy_denied_hosts"]) << "\n";
}

}  // namespace

int HandlerCommand(const RulesArgs& a) {
  const auto& p = a.positional;
  if (p.size() < 3) Fail(kHandlerUsage, 2);
  const std::string& action = p[1];
  json request = {{"instance", p[2]}};
  if (action == "set") {
    if (p.size() != 4) Fail(kHandlerUsage, 2);
    request["cmd"] = "handler_set";
    request["handler"] = p[3];
    if (!a.params.empty()) {
      json params = json::parse(a.params, nullptr, /*allow_exceptions=*/false);
      if (params.is_discarded() || !params.is_object())
        Fail(
            "handler set: --params must be a JSON object, as in '{\"hostnames\":[\"github.com\"]}'",
            2);
      request["params"] = params;
    }
  } else if (action == "clear" || action == "list") {
    if (p.size() != 3) Fail(kHandlerUsage, 2);
    if (!a.params.empty()) Fail("handler " + action + ": --params only goes with set", 2);
    request["cmd"] = "handler_" + action;
    if (action == "list" && !a.host.empty()) Fail("handler list: no --host", 2);
  } else {
    Fail(kHandlerUsage, 2);
  }
  if (!a.host.empty()) request["host"] = a.host;
  json reply = Call(a.socket, request);
  PrintWarnings(reply);
  if (a.json) {
    std::cout << reply.dump() << "\n";
    return 0;
  }
  if (action == "clear" && !reply.value("cleared", false))
    std::cout << "nothing to clear: "
              << (a.host.empty() ? "no catch-all" : "no binding for host " + a.host)
              << " set for this instance\n";
  PrintBindings(reply);
  return 0;
}

int HostsCommand(const RulesArgs& a) {
  const auto& p = a.positional;
  if (p.size() < 3) Fail(kHostsUsage, 2);
  const std::string& action = p[1];
  if (!a.host.empty() || !a.params.empty()) Fail(kHostsUsage, 2);
  json request = {{"cmd", "hosts"}, {"action", action}, {"instance", p[2]}};
  if (action == "allow" || action == "deny" || action == "remove") {
    if (p.size() < 4) Fail(kHostsUsage, 2);
    request["hosts"] = std::vector<std::string>(p.begin() + 3, p.end());
  } else if (action == "clear" || action == "list") {
    if (p.size() != 3) Fail(kHostsUsage, 2);
  } else {
    Fail(kHostsUsage, 2);
  }
  json reply = Call(a.socket, request);
  PrintWarnings(reply);
  if (a.json) {
    std::cout << reply.dump() << "\n";
    return 0;
  }
  PrintHostLists(reply);
  return 0;
}

}  // namespace egressctl
