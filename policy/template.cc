#include "policy/template.h"

namespace egressd::policy {
namespace {

constexpr size_t kMaxParamNameLength = 64;

bool IsNameChar(char c, bool dot_allowed) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || (dot_allowed && c == '.');
}

// Parameter names: [A-Za-z0-9_-]+, at most 64 characters (no '.', which
// would read as a path in {{params.a.b}}).
bool IsValidParamName(std::string_view name) {
  if (name.empty() || name.size() > kMaxParamNameLength) return false;
  for (char c : name)
    if (!IsNameChar(c, false)) return false;
  return true;
}

// Spaces and tabs around a placeholder's content are ignored: "{{ instance }}".
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr const char* kKnownPlaceholders = "use {{secret:NAME}}, {{params.NAME}} or {{instance}}";

}  // namespace

bool IsValidSecretName(std::string_view name) {
  if (name.empty() || name.size() > kMaxSecretNameLength) return false;
  if (name == "." || name == "..") return false;  // a secret name is a file name
  for (char c : name)
    if (!IsNameChar(c, true)) return false;
  return true;
}

std::optional<Template> Template::Parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<Template> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  Template t;
  t.text_ = std::string(text);
  auto add_literal = [&](std::string_view s) {
    if (s.empty()) return;
    if (!t.parts_.empty() && t.parts_.back().kind == PartKind::kLiteral)
      t.parts_.back().text.append(s);
    else
      t.parts_.push_back({PartKind::kLiteral, std::string(s)});
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      add_literal(text.substr(pos));
      break;
    }
    add_literal(text.substr(pos, open - pos));
    size_t close = text.find("}}", open + 2);
    std::string column = std::to_string(open + 1);
    if (close == std::string_view::npos)
      return fail("unclosed \"{{\" at column " + column + " (a placeholder ends with \"}}\")");
    std::string_view whole = text.substr(open, close + 2 - open);
    std::string_view inner = Trim(text.substr(open + 2, close - open - 2));
    if (inner == "instance") {
      t.parts_.push_back({PartKind::kInstance, ""});
    } else if (inner.starts_with("secret:")) {
      std::string_view name = Trim(inner.substr(7));
      if (!IsValidSecretName(name))
        return fail("bad secret name \"" + std::string(name) + "\" in \"" + std::string(whole) +
                    "\" at column " + column + ": use 1-128 letters, digits, '_', '-' and '.'");
      t.parts_.push_back({PartKind::kSecret, std::string(name)});
    } else if (inner.starts_with("params.")) {
      std::string_view name = inner.substr(7);
      if (!IsValidParamName(name))
        return fail("bad parameter name \"" + std::string(name) + "\" in \"" + std::string(whole) +
                    "\" at column " + column + ": use 1-64 letters, digits, '_' and '-'");
      t.parts_.push_back({PartKind::kParam, std::string(name)});
    } else {
      return fail("unknown placeholder \"" + std::string(whole) + "\" at column " + column + "; " +
                  kKnownPlaceholders);
    }
    pos = close + 2;
  }
  return t;
}

bool Template::uses_secret() const {
  for (const auto& p : parts_)
    if (p.kind == PartKind::kSecret) return true;
  return false;
}

std::string Template::whole_param() const {
  if (parts_.size() == 1 && parts_[0].kind == PartKind::kParam) return parts_[0].text;
  return "";
}

}  // namespace egressd::policy
