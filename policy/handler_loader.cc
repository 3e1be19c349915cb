#include "policy/handler_loader.h"

#include <set>

#include "policy/host_glob.h"

namespace egressd::policy {
namespace {

struct StepSyntax {
  std::string_view name;
  StepKind kind;
  std::string_view list_key;  // list steps: the key of the mapping form
};

constexpr StepSyntax kSteps[] = {
    {"allow_hosts", StepKind::kAllowHosts, "hosts"},
    {"deny_hosts", StepKind::kDenyHosts, "hosts"},
    {"allow_methods", StepKind::kAllowMethods, "methods"},
    {"allow_paths", StepKind::kAllowPaths, "paths"},
    {"set_header", StepKind::kSetHeader, ""},
    {"remove_header", StepKind::kRemoveHeader, ""},
    {"set_query", StepKind::kSetQuery, ""},
    {"basic_auth", StepKind::kBasicAuth, ""},
    {"deny", StepKind::kDeny, ""},
};

const StepSyntax* FindStep(std::string_view name) {
  for (const auto& s : kSteps)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string_view> StepNames() {
  std::vector<std::string_view> names;
  for (const auto& s : kSteps) names.push_back(s.name);
  return names;
}

bool IsHostStep(StepKind kind) {
  return kind == StepKind::kAllowHosts || kind == StepKind::kDenyHosts;
}

// Query parameter names: unreserved characters only (RFC 3986), so the name
// never needs encoding.
bool IsQueryName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.' || c == '~'))
      return false;
  return true;
}

bool IsString(const YAML::Node& v) {
  return v.IsScalar() && NonStringKind(v).empty();
}

// Calls f(key, value, mark) for each key of a settings mapping; an unknown
// key is an error naming the known ones. False if `v` is no mapping.
template <typename F>
bool ForEachSetting(YamlErrors& errors, const std::string& where, const YAML::Node& v,
                    const YAML::Mark& at, const std::vector<std::string_view>& known,
                    const std::string& expected, F&& f) {
  if (!v.IsMap()) {
    errors.Add(at, where + " must be " + expected + ", not " + Describe(v));
    return false;
  }
  std::set<std::string> seen;
  bool ok = true;
  for (const auto& kv : v) {
    const YAML::Node& k = kv.first;
    std::string key = k.IsScalar() ? k.Scalar() : "";
    bool is_known = false;
    for (auto s : known) is_known = is_known || s == key;
    if (!is_known) {
      errors.Add(k.Mark(),
                 where + ": unknown key " + Describe(k) + SuggestKnown(key, known, "keys"));
      ok = false;
      continue;
    }
    if (!seen.insert(key).second) {
      errors.Add(k.Mark(), where + ": duplicate key \"" + key + "\"");
      ok = false;
      continue;
    }
    ok = f(key, kv.second, MarkOf(k, kv.second)) && ok;
  }
  return ok;
}

}  // namespace

void HandlerLoader::LoadHandlers(const YAML::Node& v, const YAML::Mark& at,
                                 std::map<std::string, Handler>& out) {
  if (!v.IsMap())
    return errors_.Add(
        at, "handlers must be a mapping of handler names to lists of steps, not " + Describe(v));
  if (!errors_.CheckCount("handlers", v, at)) return;
  for (const auto& kv : v) {
    const YAML::Node& k = kv.first;
    const YAML::Node& steps = kv.second;
    if (!k.IsScalar() || !IsValidName(k.Scalar())) {
      errors_.Add(k.Mark(),
                  "handler name " + Describe(k) + ": use 1-64 letters, digits, '-', '_' and '.'");
      continue;
    }
    const std::string& name = k.Scalar();
    if (out.count(name)) {
      errors_.Add(k.Mark(), "handlers: duplicate handler \"" + name + "\"");
      continue;
    }
    const YAML::Mark m = MarkOf(k, steps);
    Handler handler;
    handler.name = name;
    if (!steps.IsSequence()) {
      errors_.Add(m, "handler \"" + name + "\" must be a list of steps, not " + Describe(steps));
    } else if (steps.size() == 0) {
      errors_.Add(m, "handler \"" + name +
                         "\" has no steps (a handler that refuses every request is [deny: {}])");
    } else if (errors_.CheckCount("handler \"" + name + "\"", steps, m)) {
      size_t index = 0;
      for (const auto& item : steps) LoadStep(name, index++, item, handler.steps);
    }
    out.emplace(name, std::move(handler));
  }
}

void HandlerLoader::LoadStep(const std::string& handler, size_t index, const YAML::Node& item,
                             std::vector<Step>& out) {
  const std::string step_at = "handler \"" + handler + "\" step " + std::to_string(index + 1);
  if (!item.IsMap() || item.size() != 1) {
    std::string hint;
    if (item.IsScalar() && FindStep(item.Scalar()))
      hint = " (write \"" + item.Scalar() + ": ...\")";
    else if (item.IsMap() && item.size() > 1)
      hint = " (it has " + std::to_string(item.size()) +
             " keys: write each step as its own list item, \"- \")";
    errors_.Add(item.Mark(), step_at +
                                 ": a step is a mapping of one step name to its settings, such as "
                                 "\"deny: {}\", not " +
                                 Describe(item) + hint);
    return;
  }
  const YAML::Node k = item.begin()->first;  // copies: the iterator is a temporary
  const YAML::Node v = item.begin()->second;
  const StepSyntax* syntax = k.IsScalar() ? FindStep(k.Scalar()) : nullptr;
  if (!syntax) {
    std::string word = k.IsScalar() ? k.Scalar() : "";
    errors_.Add(k.Mark(), step_at + ": unknown step " + Describe(k) +
                              SuggestKnown(word, StepNames(), "steps"));
    return;
  }
  Step step;
  step.kind = syntax->kind;
  step.line = k.Mark().line + 1;
  const std::string where = step_at + " (" + std::string(syntax->name) + ")";
  const YAML::Mark at = MarkOf(k, v);
  bool ok = false;
  switch (step.kind) {
    case StepKind::kAllowHosts:
    case StepKind::kDenyHosts:
    case StepKind::kAllowMethods:
    case StepKind::kAllowPaths:
      ok = LoadListStep(where, v, at, step);
      break;
    case StepKind::kSetHeader:
    case StepKind::kSetQuery:
      ok = LoadNameValueStep(where, v, at, step);
      break;
    case StepKind::kRemoveHeader:
      ok = LoadRemoveHeader(where, v, at, step);
      break;
    case StepKind::kBasicAuth:
      ok = LoadBasicAuth(where, v, at, step);
      break;
    case StepKind::kDeny:
      ok = LoadDeny(where, v, at, step);
      break;
  }
  if (ok) out.push_back(std::move(step));
}

// allow_hosts: [globs] | "{{params.NAME}}" | {hosts: ..., status: 4xx}
bool HandlerLoader::LoadListStep(const std::string& where, const YAML::Node& v,
                                 const YAML::Mark& at, Step& step) {
  std::string list_key;
  for (const auto& s : kSteps)
    if (s.kind == step.kind) list_key = s.list_key;
  const std::string expected =
      "a list, one \"{{params.NAME}}\", or {" + list_key + ": [...], status: 4xx}";
  YAML::Node list = v;
  YAML::Mark list_at = at;
  if (v.IsMap()) {
    bool have_list = false;
    bool ok =
        ForEachSetting(errors_, where, v, at, {list_key, "status"}, expected,
                       [&](const std::string& key, const YAML::Node& value, const YAML::Mark& m) {
                         if (key == "status") return LoadStatus(where, value, m, step.status);
                         have_list = true;
                         list.reset(value);
                         list_at = m;
                         return true;
                       });
    if (!ok) return false;
    if (!have_list) {
      errors_.Add(at, where + ": missing \"" + list_key + "\"");
      return false;
    }
  }
  if (IsString(list)) {
    std::string error;
    auto t = Template::Parse(list.Scalar(), &error);
    if (!t || t->whole_param().empty()) {
      errors_.Add(list_at, where + " must be " + expected + ", not " + Describe(list) +
                               " (write [\"" + list.Scalar() + "\"] for a list of one)");
      return false;
    }
    step.entries.push_back(std::move(*t));
    return true;
  }
  bool ok = true;
  bool listed = errors_.ForEachString(
      where, list, list_at,
      [&](const std::string& s, const YAML::Mark& m) { ok = LoadEntry(where, s, m, step) && ok; });
  if (!listed) return false;
  if (list.size() == 0) {
    errors_.Add(list_at,
                where + " is empty, which refuses every request; write \"deny: {}\" for that");
    return false;
  }
  return ok && list.size() <= kMaxListEntries;
}

bool HandlerLoader::LoadEntry(const std::string& where, const std::string& text,
                              const YAML::Mark& m, Step& step) {
  std::string error;
  auto t = Template::Parse(text, &error);
  if (!t) {
    errors_.Add(m, where + ": " + error);
    return false;
  }
  if (t->uses_secret()) {
    errors_.Add(m, where +
                       ": {{secret:...}} belongs in set_header, set_query and basic_auth "
                       "values; a list entry never carries a secret");
    return false;
  }
  bool literal = t->parts().size() == 1 && t->parts()[0].kind == Template::PartKind::kLiteral;
  if (literal && IsHostStep(step.kind)) {
    if (!NormalizeHostPattern(text, &error)) {
      errors_.Add(m, where + ": " + error);
      return false;
    }
  } else if (literal && step.kind == StepKind::kAllowMethods && !IsHeaderToken(text)) {
    errors_.Add(m, where + ": \"" + text + "\" is no HTTP method (a token such as GET)");
    return false;
  } else if (literal && step.kind == StepKind::kAllowPaths && text[0] != '/' && text[0] != '*') {
    errors_.Add(m, where + ": a path glob starts with '/' or '*', not \"" + text + "\"");
    return false;
  } else if (t->parts().empty()) {
    errors_.Add(m, where + ": an empty entry");
    return false;
  }
  step.entries.push_back(std::move(*t));
  return true;
}

// set_header / set_query: {name: NAME, value: TEMPLATE}
bool HandlerLoader::LoadNameValueStep(const std::string& where, const YAML::Node& v,
                                      const YAML::Mark& at, Step& step) {
  bool header = step.kind == StepKind::kSetHeader;
  bool have_name = false, have_value = false;
  bool ok = ForEachSetting(
      errors_, where, v, at, {"name", "value"}, "a mapping {name: NAME, value: VALUE}",
      [&](const std::string& key, const YAML::Node& value, const YAML::Mark& m) {
        if (key == "value") {
          have_value = true;
          return LoadValue(where, key, value, m, step.value);
        }
        have_name = true;
        if (header) return LoadHeaderName(where, value, m, step.name);
        if (!IsString(value) || !IsQueryName(value.Scalar())) {
          errors_.Add(m, where + ": query parameter name " + Describe(value) +
                             ": use letters, digits, '-', '_', '.' and '~'");
          return false;
        }
        step.name = value.Scalar();
        return true;
      });
  if (!ok) return false;
  if (!have_name || !have_value) {
    errors_.Add(at, where + ": missing \"" + (have_name ? "value" : "name") + "\"");
    return false;
  }
  return true;
}

// remove_header: NAME | {name: NAME}
bool HandlerLoader::LoadRemoveHeader(const std::string& where, const YAML::Node& v,
                                     const YAML::Mark& at, Step& step) {
  if (v.IsScalar()) return LoadHeaderName(where, v, at, step.name);
  bool have_name = false;
  bool ok = ForEachSetting(errors_, where, v, at, {"name"}, "a header name or {name: NAME}",
                           [&](const std::string&, const YAML::Node& value, const YAML::Mark& m) {
                             have_name = true;
                             return LoadHeaderName(where, value, m, step.name);
                           });
  if (ok && !have_name) errors_.Add(at, where + ": missing \"name\"");
  return ok && have_name;
}

// basic_auth: {user: TEMPLATE, password: TEMPLATE}
bool HandlerLoader::LoadBasicAuth(const std::string& where, const YAML::Node& v,
                                  const YAML::Mark& at, Step& step) {
  bool have_user = false, have_password = false;
  bool ok = ForEachSetting(
      errors_, where, v, at, {"user", "password"}, "a mapping {user: USER, password: PASSWORD}",
      [&](const std::string& key, const YAML::Node& value, const YAML::Mark& m) {
        if (key == "password") {
          have_password = true;
          return LoadValue(where, key, value, m, step.password);
        }
        have_user = true;
        if (!LoadValue(where, key, value, m, step.value)) return false;
        for (const auto& part : step.value.parts())
          if (part.kind == Template::PartKind::kLiteral &&
              part.text.find(':') != std::string::npos) {
            errors_.Add(m, where + ": a basic_auth user cannot contain ':'");
            return false;
          }
        return true;
      });
  if (!ok) return false;
  if (!have_user || !have_password) {
    errors_.Add(at, where + ": missing \"" + (have_user ? "password" : "user") + "\"");
    return false;
  }
  return true;
}

// deny: {status: 4xx, body: TEXT}, both optional
bool HandlerLoader::LoadDeny(const std::string& where, const YAML::Node& v, const YAML::Mark& at,
                             Step& step) {
  if (v.IsNull()) return true;
  return ForEachSetting(
      errors_, where, v, at, {"status", "body"}, "a mapping {status: 4xx, body: TEXT} (or {})",
      [&](const std::string& key, const YAML::Node& value, const YAML::Mark& m) {
        if (key == "status") return LoadStatus(where, value, m, step.status);
        if (!value.IsScalar()) {
          errors_.Add(m, where + ": body must be a string, not " + Describe(value));
          return false;
        }
        auto t = Template::Parse(value.Scalar(), nullptr);
        if (t && t->uses_secret()) {
          errors_.Add(m, where + ": a deny body goes to the sandbox; it never carries a secret");
          return false;
        }
        step.body = value.Scalar();
        return true;
      });
}

bool HandlerLoader::LoadStatus(const std::string& where, const YAML::Node& v, const YAML::Mark& at,
                               int& out) {
  if (v.IsScalar() && NonStringKind(v) == "a number") {
    const std::string& s = v.Scalar();
    int status = 0;
    bool digits = s.size() == 3;
    for (char c : s) digits = digits && c >= '0' && c <= '9';
    if (digits) status = std::stoi(s);
    if (status >= 400 && status <= 599) {
      out = status;
      return true;
    }
  }
  errors_.Add(at, where + ": status must be a refusal status, 400 to 599, not " + Describe(v));
  return false;
}

bool HandlerLoader::LoadHeaderName(const std::string& where, const YAML::Node& v,
                                   const YAML::Mark& at, std::string& out) {
  if (!v.IsScalar() || v.Scalar().empty()) {
    errors_.Add(at, where + ": a header name must be a non-empty string, not " + Describe(v));
    return false;
  }
  const std::string& name = v.Scalar();
  if (name.find("{{") != std::string::npos) {
    errors_.Add(at, where + ": header name \"" + name +
                        "\" holds a placeholder; only values are templates");
    return false;
  }
  if (!IsHeaderToken(name)) {
    errors_.Add(at, where + ": header name \"" + name +
                        "\" is not a token (RFC 9110: letters, digits and !#$%&'*+-.^_`|~)");
    return false;
  }
  if (IsManagedHeader(name)) {
    errors_.Add(at, where + ": header \"" + name +
                        "\" is managed by egressd (framing, routing, hop-by-hop); a handler "
                        "cannot set or remove it");
    return false;
  }
  out = name;
  return true;
}

bool HandlerLoader::LoadValue(const std::string& where, const std::string& key, const YAML::Node& v,
                              const YAML::Mark& at, Template& out) {
  if (!v.IsScalar()) {
    errors_.Add(at, where + ": " + key + " must be a string, not " + Describe(v));
    return false;
  }
  std::string error;
  auto t = Template::Parse(v.Scalar(), &error);
  if (!t) {
    errors_.Add(at, where + ": " + key + ": " + error);
    return false;
  }
  out = std::move(*t);
  return true;
}

std::optional<HandlerBinding> HandlerLoader::LoadBinding(const std::string& where,
                                                         const YAML::Node& v,
                                                         const YAML::Mark& at) {
  HandlerBinding binding;
  if (IsString(v)) {
    binding.handler = v.Scalar();
    return binding;
  }
  if (!v.IsMap()) {
    errors_.Add(at, where +
                        ": a binding is a handler name or {handler: NAME, params: {...}}, not " +
                        Describe(v));
    return std::nullopt;
  }
  bool have_handler = false;
  bool ok = ForEachSetting(
      errors_, where, v, at, {"handler", "params"},
      "a handler name or {handler: NAME, params: {...}}",
      [&](const std::string& key, const YAML::Node& value, const YAML::Mark& m) {
        if (key == "params") return LoadParams(where, value, m, binding.params);
        if (!IsString(value)) {
          errors_.Add(m, where + ": handler must be a handler's name, not " + Describe(value));
          return false;
        }
        have_handler = true;
        binding.handler = value.Scalar();
        return true;
      });
  if (ok && !have_handler) {
    errors_.Add(at, where + ": missing \"handler\"");
    return std::nullopt;
  }
  if (!ok) return std::nullopt;
  return binding;
}

bool HandlerLoader::LoadParams(const std::string& where, const YAML::Node& v, const YAML::Mark& at,
                               Params& out) {
  if (!v.IsMap()) {
    errors_.Add(at, where +
                        ": params must be a mapping of names to strings or lists of strings, "
                        "not " +
                        Describe(v));
    return false;
  }
  if (!errors_.CheckCount(where + " params", v, at)) return false;
  bool ok = true;
  for (const auto& kv : v) {
    const YAML::Node& k = kv.first;
    const YAML::Mark m = MarkOf(k, kv.second);
    if (!IsString(k)) {
      errors_.Add(k.Mark(), where + ": a parameter name must be a string, not " + Describe(k));
      ok = false;
      continue;
    }
    const std::string& name = k.Scalar();
    const std::string label = where + " params." + name;
    if (out.count(name)) {
      errors_.Add(k.Mark(), where + ": duplicate parameter \"" + name + "\"");
      ok = false;
      continue;
    }
    const YAML::Node& value = kv.second;
    if (IsString(value)) {
      out.emplace(name, value.Scalar());
      continue;
    }
    if (value.IsScalar()) {
      errors_.Add(
          m, label + " is " + NonStringKind(value) + ", not a string (quote it if you mean it)");
      ok = false;
      continue;
    }
    std::vector<std::string> list;
    bool entries_ok = true;
    size_t errors_before = errors_.size();
    if (!errors_.ForEachString(
            label, value, m, [&](const std::string& s, const YAML::Mark&) { list.push_back(s); }) ||
        errors_.size() != errors_before) {
      entries_ok = false;
    }
    if (!entries_ok) {
      ok = false;
      continue;
    }
    out.emplace(name, std::move(list));
  }
  return ok;
}

void HandlerLoader::LoadByHost(const YAML::Node& v, const YAML::Mark& at,
                               std::vector<HostBinding>& out) {
  if (!v.IsMap())
    return errors_.Add(at,
                       "by_host must be a mapping of host globs to handlers, not " + Describe(v));
  if (!errors_.CheckCount("by_host", v, at)) return;
  std::map<std::string, std::string> first_written;
  for (const auto& kv : v) {
    const YAML::Node& k = kv.first;
    if (!IsString(k)) {
      errors_.Add(k.Mark(), "by_host: a key must be a host glob, not " + Describe(k));
      continue;
    }
    std::string error;
    auto glob = NormalizeHostPattern(k.Scalar(), &error);
    if (!glob) {
      errors_.Add(k.Mark(), "by_host: " + error);
      continue;
    }
    auto [it, inserted] = first_written.emplace(*glob, k.Scalar());
    if (!inserted) {
      std::string same = it->second == k.Scalar() ? "" : " (same as \"" + it->second + "\")";
      errors_.Add(k.Mark(), "by_host: duplicate entry \"" + k.Scalar() + "\"" + same);
      continue;
    }
    const std::string where = "by_host \"" + k.Scalar() + "\"";
    const YAML::Mark m = MarkOf(k, kv.second);
    auto binding = LoadBinding(where, kv.second, m);
    if (!binding) continue;
    bindings_.push_back({where, m, *binding, false});
    out.push_back({*glob, std::move(*binding)});
  }
}

void HandlerLoader::LoadCatchAll(const YAML::Node& v, const YAML::Mark& at,
                                 std::optional<HandlerBinding>& out) {
  auto binding = LoadBinding("catch_all", v, at);
  if (!binding) return;
  bindings_.push_back({"catch_all", at, *binding, true});
  out = std::move(binding);
}

void HandlerLoader::CheckBindings(const Policy& policy) {
  std::vector<std::string_view> names;
  for (const auto& [name, handler] : policy.handlers) names.push_back(name);
  for (const auto& b : bindings_) {
    auto it = policy.handlers.find(b.binding.handler);
    if (it == policy.handlers.end()) {
      std::string hint = names.empty() ? "; the policy defines no handlers"
                                       : SuggestKnown(b.binding.handler, names, "handlers");
      errors_.AddInOrder(b.mark,
                         b.where + ": handler \"" + b.binding.handler + "\" is not defined" + hint);
      continue;
    }
    // A handler whose steps failed to load is reported already.
    if (std::string problem = CheckBinding(policy.handlers, b.binding); !problem.empty()) {
      errors_.AddInOrder(b.mark, b.where + ": " + problem);
      continue;
    }
    if (b.catch_all && it->second.uses_secrets())
      errors_.AddInOrder(b.mark, "catch_all: handler \"" + b.binding.handler +
                                     "\" adds a credential ({{secret:...}}), and a catch_all "
                                     "would send it to every host; bind it by host in by_host");
  }
}

}  // namespace egressd::policy
