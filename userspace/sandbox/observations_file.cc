#include "userspace/sandbox/observations_file.h"

#include <nlohmann/json.hpp>

#include "userspace/sandbox/saved_json.h"

namespace egressd::sandbox {

using nlohmann::json;
using saved_json::Field;

namespace {

Status ReadStringSet(const json& object, const char* key, const std::string& where,
                     std::set<std::string>* out) {
  auto it = object.find(key);
  if (it == object.end()) return EGRESSD_ERROR("{}.{}: missing", where, key);
  if (!it->is_array()) return EGRESSD_ERROR("{}.{}: must be a list of strings", where, key);
  for (const auto& e : *it) {
    if (!e.is_string()) return EGRESSD_ERROR("{}.{}: must be a list of strings", where, key);
    out->insert(e.get<std::string>());
  }
  return {};
}

StatusOr<policy::ObservedTraffic> ParseObserved(const json& j, const std::string& where) {
  if (!j.is_object()) return EGRESSD_ERROR("{}: must be an object", where);
  policy::ObservedTraffic seen;
  EGRESSD_RETURN_IF_ERROR(ReadStringSet(j, "hosts", where, &seen.hosts));
  EGRESSD_RETURN_IF_ERROR(ReadStringSet(j, "tcp", where, &seen.tcp));
  EGRESSD_RETURN_IF_ERROR(ReadStringSet(j, "other", where, &seen.other));
  Field f(j, where);
  f.Required("dropped", &seen.dropped);
  if (!f.ok()) return f.status();
  return seen;
}

StatusOr<SavedObservations> ParseEntry(const json& e, const std::string& where) {
  if (!e.is_object()) return EGRESSD_ERROR("{}: must be an object", where);
  SavedObservations entry;
  Field f(e, where);
  f.Required("instance", &entry.instance);
  f.Required("finished", &entry.finished);
  f.Required("policy_name", &entry.policy_name);
  if (!f.ok()) return f.status();
  auto cidrs = e.find("deny_cidrs");
  if (cidrs == e.end() || !cidrs->is_array())
    return EGRESSD_ERROR("{}.deny_cidrs: must be a list", where);
  for (size_t i = 0; i < cidrs->size(); i++) {
    const json& c = (*cidrs)[i];
    std::string at = where + ".deny_cidrs[" + std::to_string(i) + "]";
    if (!c.is_string()) return EGRESSD_ERROR("{}: must be a string", at);
    std::string error;
    auto cidr = policy::ParseCidr(c.get<std::string>(), &error);
    if (!cidr) return EGRESSD_ERROR("{}: {}", at, error);
    entry.deny_cidrs.push_back(*cidr);
  }
  auto observed = e.find("observed");
  if (observed == e.end()) return EGRESSD_ERROR("{}.observed: missing", where);
  auto seen = ParseObserved(*observed, where + ".observed");
  if (!seen.ok()) return seen.status();
  entry.observed = std::move(*seen);
  return entry;
}

}  // namespace

StatusOr<std::vector<SavedObservations>> ParseObservationsFile(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return EGRESSD_ERROR("not JSON");
  if (!j.is_object()) return EGRESSD_ERROR("not a JSON object");
  auto instances = j.find("instances");
  if (instances == j.end() || !instances->is_array())
    return EGRESSD_ERROR("instances: must be a list");
  std::vector<SavedObservations> out;
  for (size_t i = 0; i < instances->size(); i++) {
    auto entry = ParseEntry((*instances)[i], "instances[" + std::to_string(i) + "]");
    if (!entry.ok()) return entry.status();
    out.push_back(std::move(*entry));
  }
  return out;
}

std::string ObservationsFileText(const std::vector<SavedObservations>& entries) {
  json out;
  out["version"] = 1;
  out["instances"] = json::array();
  for (const auto& e : entries) {
    std::vector<std::string> cidrs;
    for (const auto& c : e.deny_cidrs) cidrs.push_back(c.ToString());
    const policy::ObservedTraffic& seen = e.observed;
    out["instances"].push_back({{"instance", e.instance},
                                {"finished", e.finished},
                                {"policy_name", e.policy_name},
                                {"deny_cidrs", cidrs},
                                {"observed",
                                 {{"hosts", seen.hosts},
                                  {"tcp", seen.tcp},
                                  {"other", seen.other},
                                  {"dropped", seen.dropped}}}});
  }
  return out.dump() + "\n";
}

}  // namespace egressd::sandbox
