// state.json in the state dir: the attached sandboxes, written on every
// change and read back when the daemon restarts (Registry::Restore). Pure:
// text in, the saved state or an error out; and the state out as text.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/instance_rules.h"
#include "userspace/common/status.h"
#include "userspace/sandbox/policy_source.h"

namespace egressd::sandbox {

// Version 2 added netns, proxy_port, dns_port, transient and the owner;
// version 3 the instance's runtime rules. Older files read with defaults.
constexpr int kStateVersion = 3;

// What state.json keeps of one sandbox (SandboxInfo's lasting part).
struct SavedSandbox {
  uint32_t id = 0;
  std::string cgroup;
  uint64_t cgroup_id = 0;
  std::string instance;
  PolicySource source;
  uint32_t policy_set_id = 0;
  std::string netns;
  uint16_t proxy_port = 0;
  uint16_t dns_port = 0;
  bool transient = false;
  pid_t owner_pid = 0;
  uint64_t owner_start_time = 0;
  policy::InstanceRules rules;  // `egressctl handler` / `egressctl hosts`
  bool operator==(const SavedSandbox&) const = default;
};

struct SavedState {
  uint32_t next_policy_set_id = 0;
  std::vector<SavedSandbox> sandboxes;  // distinct ids
  bool operator==(const SavedState&) const = default;
};

// Errors name the field: "sandboxes[0].proxy_port: must be an integer from
// 0 to 65535", "not JSON: ...", "unsupported state version 7".
StatusOr<SavedState> ParseStateFile(std::string_view text);

// The file's text (version kStateVersion), which ParseStateFile reads back
// to the same state.
std::string StateFileText(const SavedState& state);

}  // namespace egressd::sandbox
