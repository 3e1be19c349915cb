// Helpers of the policy loader tests (policy_loader_test, handler_loader_test).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/policy_loader.h"

namespace egressd::policy {

inline Policy MustParse(const std::string& yaml) {
  LoadResult r = ParsePolicy(yaml);
  EXPECT_TRUE(r.ok()) << FormatErrors(r.errors, "test.yaml");
  EXPECT_TRUE(r.errors.empty());
  return r.policy.value_or(Policy{});
}

// The errors as "line:column: message" strings, easy to compare in full.
inline std::vector<std::string> Errors(const std::string& yaml) {
  LoadResult r = ParsePolicy(yaml);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.policy.has_value()) << "a file with errors must yield no policy";
  std::vector<std::string> out;
  for (const auto& e : r.errors)
    out.push_back(std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message);
  return out;
}

// Exactly one error, at `line`, whose message contains `part`.
inline void ExpectOneError(const std::string& yaml, int line, int column, const std::string& part) {
  LoadResult r = ParsePolicy(yaml);
  ASSERT_EQ(r.errors.size(), 1u) << yaml << "\n" << FormatErrors(r.errors, "test.yaml");
  EXPECT_FALSE(r.policy.has_value());
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].message;
  EXPECT_EQ(r.errors[0].column, column) << r.errors[0].message;
  EXPECT_NE(r.errors[0].message.find(part), std::string::npos)
      << "message: " << r.errors[0].message << "\nwanted: " << part;
}

}  // namespace egressd::policy
