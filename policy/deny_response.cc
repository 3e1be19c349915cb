#include "policy/deny_response.h"

#include <yaml-cpp/yaml.h>

#include <array>
#include <set>

#include "policy/yaml_errors.h"

namespace egressd::policy {
namespace {

constexpr std::array<std::string_view, 6> kPlaceholders = {"reason", "host",  "policy",
                                                           "rule",   "event", "message"};
constexpr size_t kMaxContentType = 128;

bool IsJson(std::string_view content_type) {
  return content_type.find("json") != std::string_view::npos;
}

void AppendJsonEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
}

// Calls f(name) for each {{name}} of `body` and f("") for other text; the
// text between goes to `literal`. Returns the first unknown name, if any.
template <typename Literal, typename Placeholder>
std::optional<std::string> Walk(std::string_view body, Literal literal, Placeholder placeholder) {
  while (!body.empty()) {
    size_t open = body.find("{{");
    size_t close = open == std::string_view::npos ? open : body.find("}}", open + 2);
    if (close == std::string_view::npos) {
      literal(body);
      return std::nullopt;
    }
    literal(body.substr(0, open));
    std::string_view name = body.substr(open + 2, close - open - 2);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);  // {{ host }} too
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    bool known = false;
    for (auto p : kPlaceholders) known = known || p == name;
    if (!known) return std::string(name);
    placeholder(name);
    body.remove_prefix(close + 2);
  }
  return std::nullopt;
}

bool LoadStatus(const YAML::Node& v, const YAML::Mark& at, YamlErrors& errors, int& out) {
  if (v.IsScalar() && NonStringKind(v) == "a number" && v.Scalar().size() == 3) {
    const std::string& s = v.Scalar();
    bool digits = true;
    for (char c : s) digits = digits && c >= '0' && c <= '9';
    int status = digits ? std::stoi(s) : 0;
    if (status >= 400 && status <= 599) {
      out = status;
      return true;
    }
  }
  errors.Add(at, "deny_response: status must be a refusal status, 400 to 599, not " + Describe(v));
  return false;
}

bool LoadString(const std::string& key, const YAML::Node& v, const YAML::Mark& at,
                YamlErrors& errors, std::string& out) {
  if (!v.IsScalar() || !NonStringKind(v).empty()) {
    errors.Add(at, "deny_response: " + key + " must be a string, not " + Describe(v));
    return false;
  }
  out = v.Scalar();
  return true;
}

}  // namespace

std::optional<DenyResponse> LoadDenyResponse(const YAML::Node& v, const YAML::Mark& at,
                                             YamlErrors& errors) {
  if (!v.IsMap()) {
    errors.Add(at,
               "deny_response must be a mapping {status: 4xx, content_type: TYPE, body: TEXT}, "
               "not " +
                   Describe(v));
    return std::nullopt;
  }
  DenyResponse out;
  bool ok = true;
  std::set<std::string> seen;
  for (const auto& kv : v) {
    const YAML::Node& k = kv.first;
    const YAML::Mark m = MarkOf(k, kv.second);
    std::string key = k.IsScalar() ? k.Scalar() : "";
    if (key != "status" && key != "content_type" && key != "body") {
      errors.Add(k.Mark(), "deny_response: unknown key \"" + key + "\"" +
                               SuggestKnown(key, {"status", "content_type", "body"}, "keys"));
      ok = false;
      continue;
    }
    if (!seen.insert(key).second) {
      errors.Add(k.Mark(), "deny_response: duplicate key \"" + key + "\"");
      ok = false;
      continue;
    }
    if (key == "status") {
      ok = LoadStatus(kv.second, m, errors, out.status) && ok;
    } else if (key == "content_type") {
      if (!LoadString(key, kv.second, m, errors, out.content_type)) {
        ok = false;
        continue;
      }
      bool printable = !out.content_type.empty() && out.content_type.size() <= kMaxContentType;
      for (unsigned char c : out.content_type) printable = printable && c >= 0x20 && c < 0x7f;
      if (!printable) {
        errors.Add(m, "deny_response: content_type must be 1 to " +
                          std::to_string(kMaxContentType) +
                          " printable ASCII characters (a media type such as application/json)");
        ok = false;
      }
    } else {
      if (!LoadString(key, kv.second, m, errors, out.body)) {
        ok = false;
        continue;
      }
      if (out.body.size() > kMaxDenyResponseBody) {
        errors.Add(m, "deny_response: body is " + std::to_string(out.body.size()) +
                          " bytes; at most " + std::to_string(kMaxDenyResponseBody));
        ok = false;
        continue;
      }
      if (auto unknown = Walk(
              out.body, [](std::string_view) {}, [](std::string_view) {})) {
        std::string known;
        for (auto p : kPlaceholders)
          known += std::string(known.empty() ? "" : ", ") + "{{" + std::string(p) + "}}";
        errors.Add(
            m, "deny_response: body: unknown placeholder {{" + *unknown + "}}; known: " + known);
        ok = false;
      }
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::string ExpandDenyBody(const DenyResponse& response, const DenyFacts& facts) {
  const bool json = IsJson(response.content_type);
  std::string out;
  auto value = [&](std::string_view s) {
    if (json) {
      AppendJsonEscaped(out, s);
    } else {
      out += s;
    }
  };
  Walk(
      response.body, [&](std::string_view text) { out += text; },
      [&](std::string_view name) {
        if (name == "reason") value(facts.reason);
        if (name == "host") value(facts.host);
        if (name == "policy") value(facts.policy);
        if (name == "rule") value(facts.rule);
        if (name == "event") out += std::to_string(facts.event);
        if (name == "message") value(facts.message);
      });
  return out;
}

}  // namespace egressd::policy
