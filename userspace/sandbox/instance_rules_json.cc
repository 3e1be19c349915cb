#include "userspace/sandbox/instance_rules_json.h"

#include "policy/host_glob.h"

namespace egressd::sandbox {

using nlohmann::json;

namespace {

constexpr size_t kMaxParams = 64;
constexpr size_t kMaxParamEntries = 4096;

StatusOr<std::vector<std::string>> ParseGlobs(const json& j, const std::string& where) {
  if (!j.is_array()) return EGRESSD_ERROR("{}: must be a list of host globs", where);
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); i++) {
    std::string at = where + "[" + std::to_string(i) + "]";
    if (!j[i].is_string()) return EGRESSD_ERROR("{}: must be a string", at);
    std::string error;
    auto glob = policy::NormalizeHostPattern(j[i].get<std::string>(), &error);
    if (!glob) return EGRESSD_ERROR("{}: {}", at, error);
    out.push_back(*glob);
  }
  return out;
}

json BindingJson(const policy::HandlerBinding& binding) {
  return {{"handler", binding.handler}, {"params", ParamsJson(binding.params)}};
}

StatusOr<policy::HandlerBinding> ParseBinding(const json& j, const std::string& where) {
  if (!j.is_object()) return EGRESSD_ERROR("{}: must be an object", where);
  policy::HandlerBinding binding;
  auto handler = j.find("handler");
  if (handler == j.end() || !handler->is_string() || handler->get<std::string>().empty())
    return EGRESSD_ERROR("{}.handler: must be a handler name", where);
  binding.handler = handler->get<std::string>();
  if (auto params = j.find("params"); params != j.end() && !params->is_null()) {
    auto parsed = ParseParams(*params, where + ".params");
    if (!parsed.ok()) return parsed.status();
    binding.params = std::move(*parsed);
  }
  return binding;
}

}  // namespace

json ParamsJson(const policy::Params& params) {
  json out = json::object();
  for (const auto& [name, value] : params) {
    if (const auto* s = std::get_if<std::string>(&value))
      out[name] = *s;
    else
      out[name] = std::get<std::vector<std::string>>(value);
  }
  return out;
}

StatusOr<policy::Params> ParseParams(const json& j, const std::string& where) {
  if (!j.is_object())
    return EGRESSD_ERROR("{}: must be an object of strings and lists of strings", where);
  if (j.size() > kMaxParams) return EGRESSD_ERROR("{}: more than {} parameters", where, kMaxParams);
  policy::Params params;
  for (const auto& [name, value] : j.items()) {
    std::string at = where + "." + name;
    if (name.empty()) return EGRESSD_ERROR("{}: a parameter needs a name", where);
    if (value.is_string()) {
      params[name] = value.get<std::string>();
      continue;
    }
    if (!value.is_array()) return EGRESSD_ERROR("{}: must be a string or a list of strings", at);
    if (value.size() > kMaxParamEntries)
      return EGRESSD_ERROR("{}: more than {} entries", at, kMaxParamEntries);
    std::vector<std::string> list;
    for (const auto& item : value) {
      if (!item.is_string()) return EGRESSD_ERROR("{}: every entry must be a string", at);
      list.push_back(item.get<std::string>());
    }
    params[name] = std::move(list);
  }
  return params;
}

json InstanceRulesJson(const policy::InstanceRules& rules) {
  json out;
  out["allowed_hosts"] = rules.allowed_hosts;
  out["denied_hosts"] = rules.denied_hosts;
  out["by_host"] = json::array();
  for (const auto& b : rules.by_host) {
    json entry = BindingJson(b.binding);
    entry["host"] = b.host;
    out["by_host"].push_back(std::move(entry));
  }
  out["catch_all"] = rules.catch_all ? BindingJson(*rules.catch_all) : json(nullptr);
  return out;
}

StatusOr<policy::InstanceRules> ParseInstanceRules(const json& j, const std::string& where) {
  if (!j.is_object()) return EGRESSD_ERROR("{}: must be an object", where);
  policy::InstanceRules rules;
  for (const char* key : {"allowed_hosts", "denied_hosts"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    auto globs = ParseGlobs(*it, where + "." + key);
    if (!globs.ok()) return globs.status();
    (std::string(key) == "allowed_hosts" ? rules.allowed_hosts : rules.denied_hosts) =
        std::move(*globs);
  }
  if (auto it = j.find("by_host"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return EGRESSD_ERROR("{}.by_host: must be a list", where);
    for (size_t i = 0; i < it->size(); i++) {
      std::string at = where + ".by_host[" + std::to_string(i) + "]";
      const json& entry = (*it)[i];
      auto binding = ParseBinding(entry, at);
      if (!binding.ok()) return binding.status();
      auto host = entry.find("host");
      if (host == entry.end() || !host->is_string())
        return EGRESSD_ERROR("{}.host: must be a host glob", at);
      std::string error;
      auto glob = policy::NormalizeHostPattern(host->get<std::string>(), &error);
      if (!glob) return EGRESSD_ERROR("{}.host: {}", at, error);
      rules.by_host.push_back({*glob, std::move(*binding)});
    }
  }
  if (auto it = j.find("catch_all"); it != j.end() && !it->is_null()) {
    auto binding = ParseBinding(*it, where + ".catch_all");
    if (!binding.ok()) return binding.status();
    rules.catch_all = std::move(*binding);
  }
  return rules;
}

}  // namespace egressd::sandbox
