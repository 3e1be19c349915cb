#include "policy/handler.h"

#include <set>

#include "policy/host_glob.h"

namespace egressd::policy {

bool IsHeaderToken(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool tchar = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!tchar) return false;
  }
  return true;
}

bool IsManagedHeader(std::string_view name) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
  };
  std::string n = lower(name);
  for (std::string_view managed : {"host", "content-length", "transfer-encoding", "connection",
                                   "keep-alive", "upgrade", "te", "trailer"})
    if (n == managed) return true;
  return n.starts_with("proxy-");
}

const char* StepKindName(StepKind kind) {
  switch (kind) {
    case StepKind::kAllowHosts:
      return "allow_hosts";
    case StepKind::kDenyHosts:
      return "deny_hosts";
    case StepKind::kDeny:
      return "deny";
    case StepKind::kAllowMethods:
      return "allow_methods";
    case StepKind::kAllowPaths:
      return "allow_paths";
    case StepKind::kSetHeader:
      return "set_header";
    case StepKind::kRemoveHeader:
      return "remove_header";
    case StepKind::kSetQuery:
      return "set_query";
    case StepKind::kBasicAuth:
      return "basic_auth";
  }
  return "unknown";
}

bool IsRequestLevel(StepKind kind) {
  return kind != StepKind::kAllowHosts && kind != StepKind::kDenyHosts && kind != StepKind::kDeny;
}

bool Handler::needs_requests() const {
  for (const auto& s : steps)
    if (IsRequestLevel(s.kind)) return true;
  return false;
}

bool Handler::uses_secrets() const {
  for (const auto& s : steps) {
    if (s.value.uses_secret() || s.password.uses_secret()) return true;
    for (const auto& e : s.entries)
      if (e.uses_secret()) return true;
  }
  return false;
}

namespace {

std::string StepLabel(const Step& step, size_t index) {
  return std::string(StepKindName(step.kind)) + " (step " + std::to_string(index + 1) + ")";
}

// Why the strings of a list parameter cannot be entries of `step`, "" if they can.
std::string CheckListEntries(const Step& step, const std::string& param,
                             const std::vector<std::string>& values) {
  for (const auto& v : values) {
    if (step.kind == StepKind::kAllowHosts || step.kind == StepKind::kDenyHosts) {
      std::string err;
      if (!NormalizeHostPattern(v, &err))
        return "parameter \"" + param + "\": " + std::string(StepKindName(step.kind)) + ": " + err;
    } else if (v.empty()) {
      return "parameter \"" + param + "\": an empty entry";
    }
  }
  return "";
}

}  // namespace

std::string CheckBinding(const std::map<std::string, Handler>& handlers,
                         const HandlerBinding& binding) {
  auto it = handlers.find(binding.handler);
  if (it == handlers.end()) return "handler \"" + binding.handler + "\" is not defined";
  const Handler& handler = it->second;
  const std::string who = "handler \"" + handler.name + "\"";
  std::set<std::string> used;
  // A template where only a string fits: every parameter it uses is a string.
  auto check_string_use = [&](const Template& t, const std::string& where) -> std::string {
    for (const auto& part : t.parts()) {
      if (part.kind != Template::PartKind::kParam) continue;
      used.insert(part.text);
      auto p = binding.params.find(part.text);
      if (p == binding.params.end())
        return who + " uses {{params." + part.text + "}} in " + where +
               ", which the binding does not give";
      if (std::holds_alternative<std::vector<std::string>>(p->second))
        return "parameter \"" + part.text + "\" is a list, but " + who + " uses it in " + where +
               " where only a string fits (a list fits only as a whole entry of allow_hosts, "
               "deny_hosts, allow_methods or allow_paths)";
    }
    return "";
  };
  for (size_t i = 0; i < handler.steps.size(); ++i) {
    const Step& step = handler.steps[i];
    const std::string where = StepLabel(step, i);
    for (const auto& entry : step.entries) {
      std::string whole = entry.whole_param();
      if (whole.empty()) {
        if (auto err = check_string_use(entry, where); !err.empty()) return err;
        continue;
      }
      used.insert(whole);
      auto p = binding.params.find(whole);
      if (p == binding.params.end())
        return who + " uses {{params." + whole + "}} in " + where +
               ", which the binding does not give";
      const auto* list = std::get_if<std::vector<std::string>>(&p->second);
      std::vector<std::string> values =
          list ? *list : std::vector<std::string>{std::get<std::string>(p->second)};
      if (auto err = CheckListEntries(step, whole, values); !err.empty()) return err;
    }
    if (auto err = check_string_use(step.value, where); !err.empty()) return err;
    if (auto err = check_string_use(step.password, where); !err.empty()) return err;
  }
  for (const auto& [name, value] : binding.params)
    if (!used.count(name)) return "parameter \"" + name + "\" is not used by " + who + " (a typo?)";
  return "";
}

}  // namespace egressd::policy
