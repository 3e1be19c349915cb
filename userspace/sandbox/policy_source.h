// Where a sandbox's policy comes from: a name in the policy directory or a
// file path. Re-read on `policy reload` and when the daemon restarts.
#pragma once

#include <memory>
#include <string>

#include "policy/compiled_policy.h"
#include "userspace/common/status.h"

namespace egressd::sandbox {

struct PolicySource {
  enum class Kind { kName, kFile };
  Kind kind = Kind::kName;
  std::string value;  // the name, or an absolute file path
  std::string Describe() const { return (kind == Kind::kName ? "name " : "file ") + value; }
  bool operator==(const PolicySource&) const = default;
};

// Loads and compiles the policy; errors carry file:line for each problem,
// naming the file `shown_as` when given (the user's file, for a copy of it).
StatusOr<std::shared_ptr<const policy::CompiledPolicy>> LoadPolicySource(
    const PolicySource& source, const std::string& policy_dir, const std::string& shown_as = "");

}  // namespace egressd::sandbox
