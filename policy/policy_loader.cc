#include "policy/policy_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "policy/host_glob.h"

namespace egressd::policy {
namespace {

constexpr size_t kMaxNameLength = 64;
constexpr std::array<std::string_view, 9> kKeys = {
    "name",      "mode",           "allowed_hosts", "denied_hosts", "deny_cidrs",
    "allow_tcp", "allow_get_body", "allow_unnamed", "tls"};

// Edit distance, to suggest the key a typo meant.
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

// What a plain (unquoted, untagged) scalar is under the YAML 1.2 core schema
// when it is not a string: "a number", "a boolean"; empty for a string.
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

// A key for duplicate detection that sees "[::1]:22" and "[0::1]:22" as one.
std::string TcpRuleKey(const TcpRule& r) {
  return (r.host ? *r.host : r.cidr->ToString()) + " port " + std::to_string(r.port);
}

// Where a second YAML document starts, if the text has one. yaml-cpp 0.7's
// LoadAll never returns on some short inputs (",--" keeps yielding empty
// documents without consuming anything; found by fuzz_policy_yaml), so the
// loader reads the first document with Load and only asks the parser for the
// next two document starts here.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::optional<YAML::Mark> SecondDocumentStart(std::string_view text) {
  std::istringstream in{std::string(text)};
  YAML::Parser parser(in);
  DocumentStarts handler;
  for (int i = 0; i < 2 && parser.HandleNextDocument(handler); ++i) {
  }
  if (handler.starts.size() < 2) return std::nullopt;
  return handler.starts[1];
}

class Loader {
 public:
  LoadResult Run(std::string_view text) {
    if (text.size() > kMaxPolicyFileBytes) {
      errors_.push_back(
          {0, 0, "policy larger than " + std::to_string(kMaxPolicyFileBytes) + " bytes"});
      return Finish();
    }
    YAML::Node root;
    std::optional<YAML::Mark> second_document;
    try {
      root = YAML::Load(std::string(text));
      second_document = SecondDocumentStart(text);
    } catch (const YAML::Exception& e) {
      Error(e.mark, "YAML syntax: " + e.msg);
      return Finish();
    } catch (const std::exception& e) {
      errors_.push_back({0, 0, std::string("YAML: ") + e.what()});
      return Finish();
    }
    if (root.IsNull() && !second_document) {
      errors_.push_back({0, 0, "empty policy file: it needs at least \"name:\""});
      return Finish();
    }
    if (!root.IsMap()) {
      Error(root.Mark(), "the policy must be a mapping of keys (name, allowed_hosts, ...), not " +
                             Describe(root));
    } else {
      LoadRoot(root);
    }
    if (second_document)
      Error(*second_document, "a second YAML document (\"---\"): one policy per file");
    return Finish();
  }

 private:
  void LoadRoot(const YAML::Node& root) {
    std::set<std::string> seen;
    bool have_name = false;
    for (const auto& kv : root) {
      const YAML::Node& k = kv.first;
      const YAML::Node& v = kv.second;
      if (!k.IsScalar()) {
        Error(k.Mark(), "a key must be a plain name, not " + Describe(k));
        continue;
      }
      const std::string& key = k.Scalar();
      if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
        UnknownKey(k);
        continue;
      }
      if (!seen.insert(key).second) {
        Error(k.Mark(), "duplicate key \"" + key + "\"");
        continue;
      }
      // An empty value's mark points past it; the key is where the user looks.
      const YAML::Mark at = v.IsNull() ? k.Mark() : v.Mark();
      if (key == "name") {
        have_name = true;
        LoadName(v, at);
      } else if (key == "mode") {
        LoadMode(v, at);
      } else if (key == "allowed_hosts" || key == "denied_hosts") {
        LoadHosts(key, v, at,
                  key == "allowed_hosts" ? policy_.allowed_hosts : policy_.denied_hosts);
      } else if (key == "allow_get_body") {
        LoadHosts(key, v, at, policy_.allow_get_body);
      } else if (key == "allow_unnamed") {
        LoadAllowUnnamed(v, at);
      } else if (key == "deny_cidrs") {
        LoadCidrs(v, at);
      } else if (key == "allow_tcp") {
        LoadTcp(v, at);
      } else if (key == "tls") {
        LoadTls(v, at);
      }
    }
    if (!have_name) Error(root.Mark(), "missing required key \"name\"");
    if (policy_.allow_unnamed && !policy_.allowed_hosts.empty())
      ErrorInOrder(
          allow_unnamed_at_,
          "allow_unnamed has no effect with allowed_hosts (deny by default refuses what names "
          "no host); list the address in allow_tcp instead, or leave allow_unnamed out");
  }

  // tls: {intercept: [globs], passthrough: [globs]}
  void LoadTls(const YAML::Node& v, const YAML::Mark& at) {
    if (!v.IsMap())
      return Error(at, "tls must be a mapping with intercept and passthrough, not " + Describe(v));
    std::set<std::string> seen;
    for (const auto& kv : v) {
      const YAML::Node& k = kv.first;
      const YAML::Mark m = kv.second.IsNull() ? k.Mark() : kv.second.Mark();
      if (!k.IsScalar() || (k.Scalar() != "intercept" && k.Scalar() != "passthrough")) {
        Error(k.Mark(), "tls: unknown key " + Describe(k) + "; known keys: intercept, passthrough");
        continue;
      }
      if (!seen.insert(k.Scalar()).second) {
        Error(k.Mark(), "tls: duplicate key \"" + k.Scalar() + "\"");
        continue;
      }
      LoadHosts("tls." + k.Scalar(), kv.second, m,
                k.Scalar() == "intercept" ? policy_.tls_intercept : policy_.tls_passthrough);
    }
  }

  void LoadAllowUnnamed(const YAML::Node& v, const YAML::Mark& at) {
    allow_unnamed_at_ = at;
    if (v.IsScalar() && NonStringKind(v) == "a boolean") {
      policy_.allow_unnamed = v.as<bool>();
      return;
    }
    Error(at, "allow_unnamed must be true or false, not " + Describe(v));
  }

  void UnknownKey(const YAML::Node& k) {
    const std::string& key = k.Scalar();
    std::string best;
    size_t best_distance = 3;  // suggest only within an edit distance of 2
    for (std::string_view known : kKeys) {
      size_t d = Distance(key, known);
      if (d < best_distance) {
        best_distance = d;
        best = known;
      }
    }
    std::string message = "unknown key \"" + key + "\"";
    if (!best.empty()) {
      message += "; did you mean \"" + best + "\"?";
    } else {
      message += "; known keys:";
      for (std::string_view known : kKeys) message += std::string(" ") + std::string(known) + ",";
      message.pop_back();
    }
    Error(k.Mark(), message);
  }

  void LoadName(const YAML::Node& v, const YAML::Mark& at) {
    if (!v.IsScalar() || v.Scalar().empty())
      return Error(at, "name must be a non-empty string, not " + Describe(v));
    const std::string& n = v.Scalar();
    bool ok = n.size() <= kMaxNameLength;
    for (char c : n)
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.');
    if (!ok) return Error(at, "name \"" + n + "\": use 1-64 letters, digits, '-', '_' and '.'");
    policy_.name = n;
  }

  void LoadMode(const YAML::Node& v, const YAML::Mark& at) {
    if (v.IsScalar() && v.Scalar() == "enforce") {
      policy_.mode = PolicyMode::kEnforce;
      return;
    }
    if (v.IsScalar() && v.Scalar() == "audit") {
      policy_.mode = PolicyMode::kAudit;
      return;
    }
    Error(at, "mode must be \"enforce\" or \"audit\", not " + Describe(v));
  }

  void LoadHosts(const std::string& key, const YAML::Node& v, const YAML::Mark& at,
                 std::vector<std::string>& out) {
    bool listed = ForEachString(key, v, at, [&](const std::string& s, const YAML::Mark& m) {
      std::string err;
      auto n = NormalizeHostPattern(s, &err);
      if (!n) return Error(m, key + ": " + err);
      if (Duplicate(key, *n, s, m)) return;
      out.push_back(*n);
    });
    // An empty allow list would silently mean "allow every host": refuse it.
    if (listed && key == "allowed_hosts" && v.size() == 0)
      Error(at,
            "allowed_hosts is empty, which would allow every host; list the hosts to allow, or "
            "leave the key out to allow all (denied_hosts: [\"*\"] denies all)");
  }

  void LoadCidrs(const YAML::Node& v, const YAML::Mark& at) {
    ForEachString("deny_cidrs", v, at, [&](const std::string& s, const YAML::Mark& m) {
      std::string err;
      auto cidr = ParseCidr(s, &err);
      if (!cidr) return Error(m, "deny_cidrs: " + err);
      if (Duplicate("deny_cidrs", cidr->ToString(), s, m)) return;
      policy_.deny_cidrs.push_back(*cidr);
    });
  }

  void LoadTcp(const YAML::Node& v, const YAML::Mark& at) {
    ForEachString("allow_tcp", v, at, [&](const std::string& s, const YAML::Mark& m) {
      std::string err;
      auto rule = ParseTcpRule(s, &err);
      if (!rule) return Error(m, "allow_tcp: " + err);
      if (Duplicate("allow_tcp", TcpRuleKey(*rule), s, m)) return;
      policy_.allow_tcp.push_back(*rule);
    });
  }

  // Records `canonical` under `key`; true (and an error) if it was there.
  bool Duplicate(const std::string& key, const std::string& canonical, const std::string& written,
                 const YAML::Mark& m) {
    auto [it, inserted] = first_written_.emplace(std::make_pair(key, canonical), written);
    if (inserted) return false;
    std::string same = it->second == written ? "" : " (same as \"" + it->second + "\")";
    Error(m, key + ": duplicate entry \"" + written + "\"" + same);
    return true;
  }

  // Calls f for every string entry of a list; false if `list` is no list.
  template <typename F>
  bool ForEachString(const std::string& key, const YAML::Node& list, const YAML::Mark& at, F&& f) {
    if (!list.IsSequence()) {
      std::string hint =
          list.IsScalar() ? " (write [\"" + list.Scalar() + "\"] for a list of one)" : "";
      Error(at, key + " must be a list of strings, not " + Describe(list) + hint);
      return false;
    }
    if (list.size() > kMaxListEntries) {
      Error(at, key + ": " + std::to_string(list.size()) + " entries, more than the limit of " +
                    std::to_string(kMaxListEntries));
      return true;
    }
    for (const auto& item : list) {
      if (!item.IsScalar()) {
        Error(item.Mark(), key + ": each entry must be a string, not " + Describe(item));
        continue;
      }
      if (std::string kind = NonStringKind(item); !kind.empty()) {
        Error(item.Mark(), key + ": entry " + item.Scalar() + " is " + kind +
                               ", not a string (quote it if you mean it)");
        continue;
      }
      f(item.Scalar(), item.Mark());
    }
    return true;
  }

  void Error(const YAML::Mark& mark, std::string message) {
    errors_.push_back({mark.line >= 0 ? mark.line + 1 : 0,
                       mark.line >= 0 && mark.column >= 0 ? mark.column + 1 : 0,
                       std::move(message)});
  }

  // An error found after the walk (across keys), placed in document order.
  void ErrorInOrder(const YAML::Mark& mark, std::string message) {
    Error(mark, std::move(message));
    LoadError e = std::move(errors_.back());
    errors_.pop_back();
    auto later = std::find_if(errors_.begin(), errors_.end(), [&](const LoadError& x) {
      return std::tie(x.line, x.column) > std::tie(e.line, e.column);
    });
    errors_.insert(later, std::move(e));
  }

  LoadResult Finish() {
    LoadResult r;
    r.errors = std::move(errors_);
    if (r.errors.empty()) r.policy = std::move(policy_);
    return r;
  }

  Policy policy_;
  YAML::Mark allow_unnamed_at_;
  // (list, canonical entry) -> the entry as first written
  std::map<std::pair<std::string, std::string>, std::string> first_written_;
  std::vector<LoadError> errors_;
};

}  // namespace

std::optional<TcpRule> ParseTcpRule(std::string_view text, std::string* error) {
  auto fail = [&](std::string m) -> std::optional<TcpRule> {
    if (error) *error = "\"" + std::string(text) + "\": " + m;
    return std::nullopt;
  };
  std::string_view target, port_text;
  bool bracketed = !text.empty() && text[0] == '[';
  if (bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return fail("missing ']'");
    target = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return fail("missing :PORT after ']' (as in \"[::1]:5432\")");
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("missing :PORT (as in \"db.internal:5432\")");
    target = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (target.find(':') != std::string_view::npos)
      return fail("write an IPv6 address in brackets, as in \"[::1]:5432\"");
  }
  if (target.empty()) return fail("missing host or address before the port");
  int port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
      port < 1 || port > 65535)
    return fail("port must be a number 1..65535");
  TcpRule rule;
  rule.text = std::string(text);
  rule.port = static_cast<uint16_t>(port);
  bool looks_ip =
      target.find('/') != std::string_view::npos || IpAddress::Parse(target).has_value();
  if (bracketed && target.find(':') == std::string_view::npos)
    return fail("brackets are for IPv6 addresses only");
  if (looks_ip || bracketed) {
    std::string err;
    auto cidr = ParseCidr(target, &err);
    if (!cidr) return fail(err);
    rule.cidr = *cidr;
  } else {
    if (target.find('*') != std::string_view::npos)
      return fail("allow_tcp takes exact host names, not patterns");
    std::string err;
    auto host = NormalizeHostPattern(target, &err);  // no '*' here, so a plain host
    if (!host) return fail(err);
    rule.host = *host;
  }
  return rule;
}

LoadResult ParsePolicy(std::string_view yaml_text) {
  return Loader().Run(yaml_text);
}

LoadResult LoadPolicyFile(const std::string& path) {
  auto fail = [&](std::string message) {
    LoadResult r;
    r.errors.push_back({0, 0, std::move(message)});
    return r;
  };
  auto cannot_read = [&](int err) { return fail("cannot read " + path + ": " + strerror(err)); };
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return cannot_read(errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return cannot_read(err);
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return cannot_read(EISDIR);
  }
  std::string text;
  char buf[16384];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return cannot_read(err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxPolicyFileBytes) {
      close(fd);
      return fail(path + ": policy file larger than " + std::to_string(kMaxPolicyFileBytes) +
                  " bytes");
    }
  }
  close(fd);
  return ParsePolicy(text);
}

std::string FormatErrors(const std::vector<LoadError>& errors, std::string_view source_name) {
  std::ostringstream out;
  for (const auto& e : errors) {
    out << source_name;
    if (e.line > 0) out << ":" << e.line;
    if (e.line > 0 && e.column > 0) out << ":" << e.column;
    out << ": error: " << e.message << "\n";
  }
  return out.str();
}

}  // namespace egressd::policy
