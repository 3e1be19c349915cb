// observations.json in the state dir: what sandboxes in audit mode did, kept
// across restarts for `egressctl policy suggest` (finished instances and the
// live ones). Pure: text in, the saved entries or an error out; and back.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "policy/cidr.h"
#include "policy/suggest.h"
#include "userspace/common/status.h"

namespace egressd::sandbox {

struct SavedObservations {
  std::string instance;
  bool finished = false;  // the sandbox ended; else it is (was) attached
  // What `suggest` needs of its base policy.
  std::string policy_name;
  std::vector<policy::Cidr> deny_cidrs;
  policy::ObservedTraffic observed;
  bool operator==(const SavedObservations&) const = default;
};

// Errors name the field: "instances[1].observed.hosts: must be a list of
// strings", "instances[0].deny_cidrs[2]: <ParseCidr's error>".
StatusOr<std::vector<SavedObservations>> ParseObservationsFile(std::string_view text);

// The file's text (one line), which ParseObservationsFile reads back to the
// same entries.
std::string ObservationsFileText(const std::vector<SavedObservations>& entries);

}  // namespace egressd::sandbox
