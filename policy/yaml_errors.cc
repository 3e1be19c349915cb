#include "policy/yaml_errors.h"

#include <algorithm>
#include <regex>
#include <tuple>

namespace egressd::policy {

size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t prev = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = cur;
    }
  }
  return row[b.size()];
}

std::string SuggestKnown(std::string_view word, const std::vector<std::string_view>& known,
                         std::string_view what) {
  std::string best;
  size_t best_distance = 3;  // suggest only within an edit distance of 2
  for (std::string_view k : known) {
    size_t d = Distance(word, k);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  if (!best.empty()) return "; did you mean \"" + best + "\"?";
  std::string message = "; known " + std::string(what) + ":";
  for (std::string_view k : known) message += " " + std::string(k) + ",";
  message.pop_back();
  return message;
}

std::string NonStringKind(const YAML::Node& scalar) {
  if (scalar.Tag() != "?") return "";  // quoted ("!") or explicitly tagged
  static const std::regex kNumber(
      R"([-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))");
  static const std::regex kBool("true|True|TRUE|false|False|FALSE");
  const std::string& s = scalar.Scalar();
  if (std::regex_match(s, kNumber)) return "a number";
  if (std::regex_match(s, kBool)) return "a boolean";
  return "";
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar: {
      std::string kind = NonStringKind(node);
      return (kind.empty() ? "the string" : kind) + " \"" + node.Scalar() + "\"";
    }
    default:
      return "an undefined node";
  }
}

bool IsValidName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.');
  return ok;
}

void YamlErrors::Add(const YAML::Mark& mark, std::string message) {
  errors_.push_back({mark.line >= 0 ? mark.line + 1 : 0,
                     mark.line >= 0 && mark.column >= 0 ? mark.column + 1 : 0, std::move(message)});
}

void YamlErrors::AddInOrder(const YAML::Mark& mark, std::string message) {
  Add(mark, std::move(message));
  LoadError e = std::move(errors_.back());
  errors_.pop_back();
  auto later = std::find_if(errors_.begin(), errors_.end(), [&](const LoadError& x) {
    return std::tie(x.line, x.column) > std::tie(e.line, e.column);
  });
  errors_.insert(later, std::move(e));
}

bool YamlErrors::CheckCount(const std::string& key, const YAML::Node& node, const YAML::Mark& at) {
  if (node.size() <= kMaxListEntries) return true;
  Add(at, key + ": " + std::to_string(node.size()) + " entries, more than the limit of " +
              std::to_string(kMaxListEntries));
  return false;
}

}  // namespace egressd::policy
