#include "policy/policy_loader.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "policy/host_glob.h"

namespace egressd::policy {
namespace {

constexpr size_t kMaxEntries = 4096;
constexpr size_t kMaxFileBytes = 1 << 20;
const std::set<std::string> kKeys = {"name", "allowed_hosts", "denied_hosts", "deny_cidrs",
                                     "allow_tcp", "mode"};

// Edit distance, to suggest the key a typo meant.
size_t Distance(const std::string& a, const std::string& b) {
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

class Loader {
 public:
  LoadResult Run(std::string_view text) {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(std::string(text));
    } catch (const YAML::Exception& e) {
      Error(e.mark, "YAML syntax: " + e.msg);
      return Finish();
    }
    if (docs.empty() || docs[0].IsNull()) {
      errors_.push_back({0, 0, "empty policy file"});
      return Finish();
    }
    if (docs.size() > 1) Error(docs[1].Mark(), "more than one YAML document: one policy per file");
    const YAML::Node& root = docs[0];
    if (!root.IsMap()) {
      Error(root.Mark(), "the policy must be a mapping of keys (name, allowed_hosts, ...)");
      return Finish();
    }
    bool have_name = false;
    for (const auto& kv : root) {
      std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
      if (!kKeys.count(key)) {
        std::string hint;
        for (const auto& k : kKeys)
          if (Distance(key, k) <= 2) hint = " (did you mean \"" + k + "\"?)";
        Error(kv.first.Mark(), "unknown key \"" + key + "\"" + hint);
        continue;
      }
      if (!seen_.insert(key).second) {
        Error(kv.first.Mark(), "duplicate key \"" + key + "\"");
        continue;
      }
      const YAML::Node& v = kv.second;
      if (key == "name") {
        have_name = true;
        LoadName(v);
      } else if (key == "mode") {
        if (!v.IsScalar() || v.Scalar() != "enforce") {
          if (v.IsScalar() && v.Scalar() == "audit")
            Error(v.Mark(), "mode \"audit\" is not supported yet; only \"enforce\"");
          else
            Error(v.Mark(), "mode must be \"enforce\"");
        }
      } else if (key == "allowed_hosts" || key == "denied_hosts") {
        auto& out = key == "allowed_hosts" ? policy_.allowed_hosts : policy_.denied_hosts;
        ForEachString(v, key, [&](const std::string& s, const YAML::Mark& m) {
          HostGlobSet probe;
          if (auto err = probe.Add(s)) return Error(m, key + ": " + *err);
          std::string n = s;
          if (!n.empty() && n.back() == '.') n.pop_back();
          for (char& c : n) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
          out.push_back(n);
        });
      } else if (key == "deny_cidrs") {
        ForEachString(v, key, [&](const std::string& s, const YAML::Mark& m) {
          std::string err;
          auto cidr = ParseCidr(s, &err);
          if (!cidr) return Error(m, "deny_cidrs: " + err);
          policy_.deny_cidrs.push_back(*cidr);
        });
      } else if (key == "allow_tcp") {
        ForEachString(v, key, [&](const std::string& s, const YAML::Mark& m) {
          std::string err;
          auto rule = ParseTcpRule(s, &err);
          if (!rule) return Error(m, "allow_tcp: " + err);
          policy_.allow_tcp.push_back(*rule);
        });
      }
    }
    if (!have_name) Error(root.Mark(), "missing required key \"name\"");
    return Finish();
  }

 private:
  void Error(const YAML::Mark& mark, std::string message) {
    errors_.push_back({mark.line >= 0 ? mark.line + 1 : 0, mark.column >= 0 ? mark.column + 1 : 0,
                       std::move(message)});
  }

  void LoadName(const YAML::Node& v) {
    if (!v.IsScalar() || v.Scalar().empty())
      return Error(v.Mark(), "name must be a non-empty string");
    const std::string& n = v.Scalar();
    bool ok = n.size() <= 64;
    for (char c : n) ok = ok && (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
    if (!ok) return Error(v.Mark(), "name \"" + n + "\": use 1-64 letters, digits, '-', '_', '.'");
    policy_.name = n;
  }

  template <typename F>
  void ForEachString(const YAML::Node& list, const std::string& key, F&& f) {
    if (list.IsNull()) return;
    if (!list.IsSequence()) return Error(list.Mark(), key + " must be a list of strings");
    if (list.size() > kMaxEntries)
      return Error(list.Mark(), key + ": more than " + std::to_string(kMaxEntries) + " entries");
    std::set<std::string> seen;
    for (const auto& item : list) {
      if (!item.IsScalar()) {
        Error(item.Mark(), key + ": each entry must be a string");
        continue;
      }
      // Quoted or plain scalars are fine; a number like 5 is a mistake in
      // every list we have, since no entry is just digits.
      const std::string& s = item.Scalar();
      if (item.Tag() != "!" && !s.empty() &&
          s.find_first_not_of("0123456789") == std::string::npos) {
        Error(item.Mark(), key + ": \"" + s + "\" is a number, not a host, CIDR or host:port");
        continue;
      }
      if (!seen.insert(s).second) {
        Error(item.Mark(), key + ": duplicate entry \"" + s + "\"");
        continue;
      }
      f(s, item.Mark());
    }
  }

  LoadResult Finish() {
    LoadResult r;
    r.errors = std::move(errors_);
    if (r.errors.empty()) r.policy = std::move(policy_);
    return r;
  }

  Policy policy_;
  std::set<std::string> seen_;
  std::vector<LoadError> errors_;
};

}  // namespace

std::optional<TcpRule> ParseTcpRule(std::string_view text, std::string* error) {
  auto fail = [&](std::string m) -> std::optional<TcpRule> {
    if (error) *error = "\"" + std::string(text) + "\": " + m;
    return std::nullopt;
  };
  std::string_view target, port_text;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return fail("missing ']'");
    target = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return fail("missing :PORT");
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("missing :PORT");
    target = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (target.find(':') != std::string_view::npos) return fail("write IPv6 as [addr]:PORT");
  }
  int port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
      port < 1 || port > 65535)
    return fail("port must be 1..65535");
  TcpRule rule;
  rule.text = std::string(text);
  rule.port = static_cast<uint16_t>(port);
  if (target.empty()) return fail("missing host or address");
  bool looks_ip = target.find('/') != std::string_view::npos || IpAddress::Parse(target).has_value();
  if (looks_ip) {
    std::string err;
    auto cidr = ParseCidr(target, &err);
    if (!cidr) return fail(err);
    rule.cidr = *cidr;
  } else {
    if (target.find('*') != std::string_view::npos)
      return fail("allow_tcp takes exact host names, not patterns");
    auto host = NormalizeHost(target);
    if (!host) return fail("invalid host name");
    rule.host = *host;
  }
  return rule;
}

LoadResult ParsePolicy(std::string_view yaml_text) { return Loader().Run(yaml_text); }

LoadResult LoadPolicyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.errors.push_back({0, 0, "cannot read " + path + ": " + strerror(errno)});
    return r;
  }
  std::string text;
  text.resize(kMaxFileBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxFileBytes) {
    LoadResult r;
    r.errors.push_back({0, 0, "policy file larger than 1 MiB"});
    return r;
  }
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
