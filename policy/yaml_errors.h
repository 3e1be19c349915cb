// What the policy loaders (policy_loader.cc, handler_loader.cc) share: how a
// YAML node is described in an error, and the list of errors with their line
// and column.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <string_view>
#include <vector>

#include "policy/policy_loader.h"

namespace egressd::policy {

// Edit distance, to suggest the key a typo meant.
size_t Distance(std::string_view a, std::string_view b);

// "; did you mean \"allowed_hosts\"?" when one of `known` is within an edit
// distance of 2, else "; known <what>: a, b, c".
std::string SuggestKnown(std::string_view word, const std::vector<std::string_view>& known,
                         std::string_view what);

// What a plain (unquoted, untagged) scalar is under the YAML 1.2 core schema
// when it is not a string: "a number", "a boolean"; empty for a string.
std::string NonStringKind(const YAML::Node& scalar);

// "a list", "the string \"x\"", "a number \"3\"", ...
std::string Describe(const YAML::Node& node);

// Names of policies and handlers: 1-64 letters, digits, '-', '_' and '.'.
bool IsValidName(std::string_view name);

// A value's mark, or its key's when the value is empty (an empty value's mark
// points past it; the key is where the user looks).
inline YAML::Mark MarkOf(const YAML::Node& key, const YAML::Node& value) {
  return value.IsNull() ? key.Mark() : value.Mark();
}

class YamlErrors {
 public:
  void Add(const YAML::Mark& mark, std::string message);
  // An error of the whole file (line 0).
  void AddFile(std::string message) { errors_.push_back({0, 0, std::move(message)}); }
  // An error found after the walk (across keys), placed in document order.
  void AddInOrder(const YAML::Mark& mark, std::string message);
  bool empty() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  std::vector<LoadError> Take() { return std::move(errors_); }

  // Calls f(string, mark) for every string entry of a list; false (and an
  // error) if `list` is no list. More than kMaxListEntries entries: an error.
  template <typename F>
  bool ForEachString(const std::string& key, const YAML::Node& list, const YAML::Mark& at, F&& f) {
    if (!list.IsSequence()) {
      std::string hint =
          list.IsScalar() ? " (write [\"" + list.Scalar() + "\"] for a list of one)" : "";
      Add(at, key + " must be a list of strings, not " + Describe(list) + hint);
      return false;
    }
    if (!CheckCount(key, list, at)) return true;
    for (const auto& item : list) {
      if (!item.IsScalar()) {
        Add(item.Mark(), key + ": each entry must be a string, not " + Describe(item));
        continue;
      }
      if (std::string kind = NonStringKind(item); !kind.empty()) {
        Add(item.Mark(), key + ": entry " + item.Scalar() + " is " + kind +
                             ", not a string (quote it if you mean it)");
        continue;
      }
      f(item.Scalar(), item.Mark());
    }
    return true;
  }

  // False (and an error) if the list or mapping has more than kMaxListEntries.
  bool CheckCount(const std::string& key, const YAML::Node& node, const YAML::Mark& at);

 private:
  std::vector<LoadError> errors_;
};

}  // namespace egressd::policy
