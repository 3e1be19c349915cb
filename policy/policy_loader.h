// Loading a policy file (YAML, one policy per file) with every error reported
// at its line and column. A file with any error yields no policy.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace egressd::policy {

constexpr size_t kMaxListEntries = 4096;         // per list
constexpr size_t kMaxPolicyFileBytes = 1 << 20;  // LoadPolicyFile refuses larger files

struct LoadError {
  int line = 0;    // 1-based; 0 = the whole file
  int column = 0;  // 1-based; 0 = unknown
  std::string message;
};

struct LoadResult {
  std::optional<Policy> policy;
  std::vector<LoadError> errors;
  bool ok() const { return policy.has_value() && errors.empty(); }
};

// Every error in the text, in document order (a YAML syntax error stops the
// parse, so it comes alone).
LoadResult ParsePolicy(std::string_view yaml_text);
// A read error is one LoadError{0, 0, "cannot read PATH: strerror"}.
LoadResult LoadPolicyFile(const std::string& path);
// "agent.yaml:3:5: error: ..." one line each; "agent.yaml: error: ..." when
// the line is 0.
std::string FormatErrors(const std::vector<LoadError>& errors, std::string_view source_name);

// Parses one allow_tcp entry; error text on failure.
std::optional<TcpRule> ParseTcpRule(std::string_view text, std::string* error);

}  // namespace egressd::policy
