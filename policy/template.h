// Templates in handler values: literal text with {{secret:NAME}},
// {{params.NAME}} and {{instance}}. Parsed once when the policy loads;
// expanded per request against the instance, the binding's parameters and
// the secrets (looked up through SecretSource, never read here).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::policy {

// Secret names: [A-Za-z0-9_.-]+, at most kMaxSecretNameLength characters,
// not "." or ".." (a secret is a file of that name). The one rule for the
// policy's templates and the secrets store.
inline constexpr size_t kMaxSecretNameLength = 128;
bool IsValidSecretName(std::string_view name);

class Template {
 public:
  enum class PartKind { kLiteral, kSecret, kParam, kInstance };
  struct Part {
    PartKind kind = PartKind::kLiteral;
    std::string text;  // the literal, the secret's name or the parameter's name
    bool operator==(const Part&) const = default;
  };

  Template() = default;
  // nullopt with `error` set ("unclosed \"{{\" at column 7", "unknown
  // placeholder \"{{foo}}\"; use {{secret:NAME}}, {{params.NAME}} or
  // {{instance}}", "bad secret name ..."). Text without "{{" is one literal.
  static std::optional<Template> Parse(std::string_view text, std::string* error);

  const std::vector<Part>& parts() const { return parts_; }
  const std::string& text() const { return text_; }  // as written
  bool uses_secret() const;
  // Exactly one {{params.NAME}} and nothing else: NAME, else "".
  std::string whole_param() const;
  bool operator==(const Template& other) const { return text_ == other.text_; }

 private:
  std::string text_;
  std::vector<Part> parts_;
};

}  // namespace egressd::policy
