// Handlers built in code for the handler tests (the loader has its own tests).
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <string>

#include "policy/handler.h"
#include "policy/handler_eval.h"

namespace egressd::policy::test_handlers {

inline Template T(std::string_view text) {
  std::string error;
  auto t = Template::Parse(text, &error);
  EXPECT_TRUE(t) << text << ": " << error;
  return t.value_or(Template{});
}

inline Step ListStep(StepKind kind, std::initializer_list<const char*> entries, int status = 403) {
  Step s;
  s.kind = kind;
  for (const char* e : entries) s.entries.push_back(T(e));
  s.status = status;
  return s;
}

inline Step DenyStep(std::string body = "", int status = 403) {
  Step s;
  s.kind = StepKind::kDeny;
  s.body = std::move(body);
  s.status = status;
  return s;
}

inline Step ValueStep(StepKind kind, std::string name, std::string_view value) {
  Step s;
  s.kind = kind;
  s.name = std::move(name);
  s.value = T(value);
  return s;
}

inline Step RemoveHeaderStep(std::string name) {
  Step s;
  s.kind = StepKind::kRemoveHeader;
  s.name = std::move(name);
  return s;
}

inline Step BasicAuthStep(std::string_view user, std::string_view password) {
  Step s;
  s.kind = StepKind::kBasicAuth;
  s.value = T(user);
  s.password = T(password);
  return s;
}

inline Handler MakeHandler(std::string name, std::vector<Step> steps) {
  Handler h;
  h.name = std::move(name);
  h.steps = std::move(steps);
  return h;
}

// Secrets from a map; a name mapped to "!problem" is unusable for that reason.
class MapSecrets : public SecretSource {
 public:
  explicit MapSecrets(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  SecretLookup Find(std::string_view name) const override {
    auto it = values_.find(std::string(name));
    if (it == values_.end()) return {std::nullopt, ""};
    if (it->second.starts_with("!")) return {std::nullopt, it->second.substr(1)};
    return {it->second, ""};
  }

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace egressd::policy::test_handlers
