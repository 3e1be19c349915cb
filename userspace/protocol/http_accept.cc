#include "userspace/protocol/http_accept.h"

#include <cstddef>
#include <optional>

namespace egressd::protocol {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (x != b[i]) return false;
  }
  return true;
}

// A qvalue: "0", "0.xxx", "1", "1.000" (at most three decimals), in thousandths.
std::optional<int> ParseQ(std::string_view v) {
  if (v.empty() || (v[0] != '0' && v[0] != '1')) return std::nullopt;
  int whole = v[0] - '0';
  int thousandths = 0;
  if (v.size() > 1) {
    if (v[1] != '.' || v.size() > 5) return std::nullopt;
    int scale = 100;
    for (size_t i = 2; i < v.size(); ++i, scale /= 10) {
      if (v[i] < '0' || v[i] > '9') return std::nullopt;
      thousandths += (v[i] - '0') * scale;
    }
  }
  int q = whole * 1000 + thousandths;
  return q > 1000 ? std::nullopt : std::optional<int>(q);
}

// How one media type fares against the list: the weight and specificity of
// the most specific range that matches it, and that range's position.
struct Match {
  int specificity = -1;  // -1: no range matched; 0 */*, 1 type/*, 2 type/subtype
  int q = 0;
  size_t index = 0;
};

void Consider(Match& m, int specificity, int q, size_t index) {
  if (specificity > m.specificity) m = Match{specificity, q, index};
}

}  // namespace

bool AcceptPrefersJson(std::string_view accept) {
  Match json, text;
  size_t index = 0;
  while (!accept.empty()) {
    size_t comma = accept.find(',');
    std::string_view element = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    size_t semi = element.find(';');
    std::string_view range = Trim(element.substr(0, semi));
    if (range.empty()) continue;  // empty list elements are allowed
    int q = 1000;
    while (semi != std::string_view::npos) {
      element = element.substr(semi + 1);
      semi = element.find(';');
      std::string_view param = Trim(element.substr(0, semi));
      size_t eq = param.find('=');
      if (eq == std::string_view::npos) return false;
      if (EqualsNoCase(Trim(param.substr(0, eq)), "q")) {
        auto parsed = ParseQ(Trim(param.substr(eq + 1)));
        if (!parsed) return false;
        q = *parsed;
      }
    }
    size_t slash = range.find('/');
    if (slash == std::string_view::npos) return false;
    std::string_view type = range.substr(0, slash);
    std::string_view subtype = range.substr(slash + 1);
    if (type.empty() || subtype.empty()) return false;
    if (type == "*" && subtype == "*") {
      Consider(json, 0, q, index);
      Consider(text, 0, q, index);
    } else if (subtype == "*") {
      if (EqualsNoCase(type, "application")) Consider(json, 1, q, index);
      if (EqualsNoCase(type, "text")) Consider(text, 1, q, index);
    } else if (EqualsNoCase(range, "application/json")) {
      Consider(json, 2, q, index);
    } else if (EqualsNoCase(range, "text/plain")) {
      Consider(text, 2, q, index);
    }
    ++index;
  }
  if (json.specificity < 0 || json.q == 0) return false;
  if (json.q != text.q) return json.q > text.q;  // an unmatched text has weight 0
  if (json.specificity != text.specificity) return json.specificity > text.specificity;
  return json.index < text.index;
}

}  // namespace egressd::protocol
