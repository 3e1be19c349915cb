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
    {"netns", &ControlRequest::netns},
    {"name", &ControlRequest::name},
    {"value", &ControlRequest::value},
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
  return request;
}

json ControlRequestJson(const ControlRequest& request) {
  json out = json::object();
  for (const auto& [key, field] : kStringFields)
    if (!(request.*field).empty()) out[key] = request.*field;
  if (request.transient) out["transient"] = *request.transient;
  for (const auto& [key, field] : kCountFields)
    if (request.*field) out[key] = *(request.*field);
  return out;
}

}  // namespace egressd::control
