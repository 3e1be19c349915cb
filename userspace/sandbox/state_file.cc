#include "userspace/sandbox/state_file.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "userspace/sandbox/instance_rules_json.h"
#include "userspace/sandbox/saved_json.h"

namespace egressd::sandbox {

using nlohmann::json;
using saved_json::Field;

namespace {

StatusOr<SavedSandbox> ParseSandbox(const json& s, const std::string& where) {
  if (!s.is_object()) return EGRESSD_ERROR("{}: must be an object", where);
  SavedSandbox sb;
  std::string kind;
  Field f(s, where);
  f.Required("id", &sb.id);
  f.Required("cgroup", &sb.cgroup);
  f.Required("cgroup_id", &sb.cgroup_id);
  f.Required("instance", &sb.instance);
  f.Required("policy_kind", &kind);
  f.Required("policy", &sb.source.value);
  f.Required("policy_set_id", &sb.policy_set_id);
  f.Optional("netns", &sb.netns);
  f.Optional("proxy_port", &sb.proxy_port);
  f.Optional("dns_port", &sb.dns_port);
  f.Optional("transient", &sb.transient);
  f.Optional("owner_pid", &sb.owner_pid);
  f.Optional("owner_start_time", &sb.owner_start_time);
  if (!f.ok()) return f.status();
  if (kind == "name")
    sb.source.kind = PolicySource::Kind::kName;
  else if (kind == "file")
    sb.source.kind = PolicySource::Kind::kFile;
  else
    return EGRESSD_ERROR("{}.policy_kind: must be \"name\" or \"file\"", where);
  if (auto rules = s.find("rules"); rules != s.end() && !rules->is_null()) {
    auto parsed = ParseInstanceRules(*rules, where + ".rules");
    if (!parsed.ok()) return parsed.status();
    sb.rules = std::move(*parsed);
  }
  return sb;
}

}  // namespace

StatusOr<SavedState> ParseStateFile(std::string_view text) {
  json state = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (state.is_discarded()) return EGRESSD_ERROR("not JSON");
  if (!state.is_object()) return EGRESSD_ERROR("not a JSON object");
  int version = 0;
  SavedState out;
  Field f(state, "");
  f.Required("version", &version);
  f.Required("next_policy_set_id", &out.next_policy_set_id);
  if (!f.ok()) return f.status();
  if (version < 1 || version > kStateVersion)
    return EGRESSD_ERROR("unsupported state version {}", version);
  auto sandboxes = state.find("sandboxes");
  if (sandboxes == state.end() || !sandboxes->is_array())
    return EGRESSD_ERROR("sandboxes: must be a list");
  std::set<uint32_t> ids;
  for (size_t i = 0; i < sandboxes->size(); i++) {
    std::string where = "sandboxes[" + std::to_string(i) + "]";
    auto sb = ParseSandbox((*sandboxes)[i], where);
    if (!sb.ok()) return sb.status();
    // Two entries with one id would be one sandbox kept and one forgotten.
    if (!ids.insert(sb->id).second) return EGRESSD_ERROR("{}.id: {} appears twice", where, sb->id);
    out.sandboxes.push_back(std::move(*sb));
  }
  return out;
}

std::string StateFileText(const SavedState& state) {
  json out;
  out["version"] = kStateVersion;
  out["next_policy_set_id"] = state.next_policy_set_id;
  out["sandboxes"] = json::array();
  for (const auto& sb : state.sandboxes) {
    out["sandboxes"].push_back({
        {"id", sb.id},
        {"cgroup", sb.cgroup},
        {"cgroup_id", sb.cgroup_id},
        {"instance", sb.instance},
        {"policy_kind", sb.source.kind == PolicySource::Kind::kName ? "name" : "file"},
        {"policy", sb.source.value},
        {"policy_set_id", sb.policy_set_id},
        {"netns", sb.netns},
        {"proxy_port", sb.proxy_port},
        {"dns_port", sb.dns_port},
        {"transient", sb.transient},
        {"owner_pid", sb.owner_pid},
        {"owner_start_time", sb.owner_start_time},
        {"rules", InstanceRulesJson(sb.rules)},
    });
  }
  return out.dump(2) + "\n";
}

}  // namespace egressd::sandbox
