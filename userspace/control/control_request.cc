#include "userspace/control/control_request.h"

namespace egressd::control {
namespace {

using nlohmann::json;

// The string fields, in the order of the struct.
constexpr std::pair<const char*, std::string ControlRequest::*> kStringFields[] = {
    {"cmd", &ControlRequest::cmd},
    {"target", &ControlRequest::target},
    {"cgroup", &ControlRequest::cgroup},
    {"policy", &ControlRequest::policy},
    {"policy_file", &ControlRequest::policy_file},
    {"instance", &ControlRequest::instance},
    {"name", &ControlRequest::name},
    {"value", &ControlRequest::value},
    {"netns", &ControlRequest::netns},
    {"handler", &ControlRequest::handler},
    {"host", &ControlRequest::host},
    {"action", &ControlRequest::action},
};

constexpr std::pair<const char*, std::optional<uint64_t> ControlRequest::*> kCountFields[] = {
    {"after_seq", &ControlRequest::after_seq},
    {"limit", &ControlRequest::limit},
};

}  // namespace

StatusOr<ControlRequest> ParseControlRequest(std::string_view line) {
  // No exceptions: an invalid document (bad UTF-8 in a string included)
  // comes back discarded.
  json parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object())
    return EGRESSD_ERROR("request is not a JSON object");
  ControlRequest request;
  for (const auto& [key, field] : kStringFields) {
    auto it = parsed.find(key);
    if (it == parsed.end() || it->is_null()) continue;
    if (!it->is_string()) return EGRESSD_ERROR("\"{}\" must be a string", key);
    request.*field = it->get<std::string>();
  }
  auto transient = parsed.find("transient");
  if (transient != parsed.end()) {
    if (!transient->is_boolean()) return EGRESSD_ERROR("\"transient\" must be true or false");
    request.transient = transient->get<bool>();
  }
  for (const auto& [key, field] : kCountFields) {
    auto it = parsed.find(key);
    if (it == parsed.end()) continue;
    // is_number_unsigned: an integer >= 0 that fits 64 bits (not 1.5, -1, 1e99).
    if (!it->is_number_unsigned())
      return EGRESSD_ERROR("\"{}\" must be an integer from 0 to 2^64-1", key);
    request.*field = it->get<uint64_t>();
  }
  if (auto params = parsed.find("params"); params != parsed.end() && !params->is_null()) {
    if (!params->is_object()) return EGRESSD_ERROR("\"params\" must be a JSON object");
    request.params = *params;
  }
  if (auto hosts = parsed.find("hosts"); hosts != parsed.end() && !hosts->is_null()) {
    if (!hosts->is_array()) return EGRESSD_ERROR("\"hosts\" must be a list of strings");
    for (const auto& host : *hosts) {
      if (!host.is_string()) return EGRESSD_ERROR("\"hosts\" must be a list of strings");
      request.hosts.push_back(host.get<std::string>());
    }
  }
  return request;
}

json ControlRequestJson(const ControlRequest& request) {
  json out = json::object();
  for (const auto& [key, field] : kStringFields)
    if (!(request.*field).empty()) out[key] = request.*field;
  if (request.transient) out["transient"] = *request.transient;
  for (const auto& [key, field] : kCountFields)
    if (request.*field) out[key] = *(request.*field);
  if (request.params) out["params"] = *request.params;
  if (!request.hosts.empty()) out["hosts"] = request.hosts;
  return out;
}

}  // namespace egressd::control
