// The control API's secret commands: secret_set {name, instance?, value},
// secret_rm {name, instance?}, secret_list {instance?}. Replies and errors
// name secrets, never hold a value. An instance need not be attached:
// operators provision secrets before a run.
#include <nlohmann/json.hpp>

#include "userspace/control/control_request.h"
#include "userspace/daemon/daemon.h"
#include "userspace/sandbox/instance_name.h"
#include "userspace/secrets/secret_store.h"

namespace egressd::daemon {
namespace {

Status CheckInstance(const char* cmd, const std::string& instance) {
  if (instance.empty()) return {};
  Status valid = sandbox::CheckInstanceName(instance);
  if (!valid.ok()) return EGRESSD_ERROR("{}: {}", cmd, valid.message());
  return {};
}

nlohmann::json ListingJson(const secrets::SecretListing& row) {
  nlohmann::json out = {{"name", row.name},
                        {"scope", row.instance.empty() ? "shared" : "instance"},
                        {"changed", row.changed_sec},
                        {"usable", row.usable}};
  if (!row.instance.empty()) out["instance"] = row.instance;
  if (!row.problem.empty()) out["problem"] = row.problem;
  return out;
}

}  // namespace

std::optional<StatusOr<nlohmann::json>> Daemon::HandleSecretCommand(
    const control::ControlRequest& request) {
  const std::string& cmd = request.cmd;
  if (cmd != "secret_set" && cmd != "secret_rm" && cmd != "secret_list") return std::nullopt;
  EGRESSD_RETURN_IF_ERROR(CheckInstance(cmd.c_str(), request.instance));
  if (cmd == "secret_list") {
    if (!request.value.empty()) return EGRESSD_ERROR("secret_list: takes no \"value\"");
    nlohmann::json out;
    out["secrets"] = nlohmann::json::array();
    for (const auto& row : secrets_->List(request.instance))
      out["secrets"].push_back(ListingJson(row));
    auto problems = secrets_->DirectoryProblems(request.instance);
    if (!problems.empty()) out["problems"] = problems;
    return out;
  }
  if (request.name.empty()) return EGRESSD_ERROR("{}: \"name\" is required", cmd);
  Status valid = secrets::CheckName(request.name);
  if (!valid.ok()) return EGRESSD_ERROR("{}: {}", cmd, valid.message());
  if (cmd == "secret_rm") {
    if (!request.value.empty()) return EGRESSD_ERROR("secret_rm: takes no \"value\"");
    EGRESSD_RETURN_IF_ERROR(secrets_->Remove(request.name, request.instance));
    return nlohmann::json::object();
  }
  if (request.value.empty())
    return EGRESSD_ERROR("secret_set: \"value\" is required (and not empty) for secret {}",
                         request.name);
  EGRESSD_RETURN_IF_ERROR(secrets_->Set(request.name, request.instance, request.value));
  nlohmann::json out = {{"name", request.name},
                        {"scope", request.instance.empty() ? "shared" : "instance"}};
  if (!request.instance.empty()) out["instance"] = request.instance;
  return out;
}

}  // namespace egressd::daemon
