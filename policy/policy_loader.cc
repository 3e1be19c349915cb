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

#include "policy/handler_loader.h"
#include "policy/host_glob.h"
#include "policy/yaml_errors.h"

namespace egressd::policy {
namespace {

const std::vector<std::string_view> kKeys = {"name",
                                             "mode",
                                             "allowed_hosts",
                                             "denied_hosts",
                                             "deny_cidrs",
                                             "allow_tcp",
                                             "allow_get_body",
                                             "allow_unnamed",
                                             "tls",
                                             "handlers",
                                             "by_host",
                                             "catch_all",
                                             "allow_plaintext_credentials",
                                             "deny_response"};

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
      errors_.AddFile("policy larger than " + std::to_string(kMaxPolicyFileBytes) + " bytes");
      return Finish();
    }
    YAML::Node root;
    std::optional<YAML::Mark> second_document;
    try {
      root = YAML::Load(std::string(text));
      second_document = SecondDocumentStart(text);
    } catch (const YAML::Exception& e) {
      errors_.Add(e.mark, "YAML syntax: " + e.msg);
      return Finish();
    } catch (const std::exception& e) {
      errors_.AddFile(std::string("YAML: ") + e.what());
      return Finish();
    }
    if (root.IsNull() && !second_document) {
      errors_.AddFile("empty policy file: it needs at least \"name:\"");
      return Finish();
    }
    if (!root.IsMap()) {
      errors_.Add(
          root.Mark(),
          "the policy must be a mapping of keys (name, allowed_hosts, ...), not " + Describe(root));
    } else {
      LoadRoot(root);
    }
    if (second_document)
      errors_.Add(*second_document, "a second YAML document (\"---\"): one policy per file");
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
        errors_.Add(k.Mark(), "a key must be a plain name, not " + Describe(k));
        continue;
      }
      const std::string& key = k.Scalar();
      if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
        UnknownKey(k);
        continue;
      }
      if (!seen.insert(key).second) {
        errors_.Add(k.Mark(), "duplicate key \"" + key + "\"");
        continue;
      }
      const YAML::Mark at = MarkOf(k, v);
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
        allow_unnamed_at_ = at;
        LoadBool(key, v, at, policy_.allow_unnamed);
      } else if (key == "allow_plaintext_credentials") {
        LoadBool(key, v, at, policy_.allow_plaintext_credentials);
      } else if (key == "deny_response") {
        policy_.deny_response = LoadDenyResponse(v, at, errors_);
      } else if (key == "handlers") {
        handlers_.LoadHandlers(v, at, policy_.handlers);
      } else if (key == "by_host") {
        handlers_.LoadByHost(v, at, policy_.by_host);
      } else if (key == "catch_all") {
        handlers_.LoadCatchAll(v, at, policy_.catch_all);
      } else if (key == "deny_cidrs") {
        LoadCidrs(v, at);
      } else if (key == "allow_tcp") {
        LoadTcp(v, at);
      } else if (key == "tls") {
        LoadTls(v, at);
      }
    }
    if (!have_name) errors_.Add(root.Mark(), "missing required key \"name\"");
    handlers_.CheckBindings(policy_);
    if (policy_.allow_unnamed && !policy_.allowed_hosts.empty())
      errors_.AddInOrder(
          allow_unnamed_at_,
          "allow_unnamed has no effect with allowed_hosts (deny by default refuses what names "
          "no host); list the address in allow_tcp instead, or leave allow_unnamed out");
  }

  // tls: {intercept: [globs], passthrough: [globs]}
  void LoadTls(const YAML::Node& v, const YAML::Mark& at) {
    if (!v.IsMap())
      return errors_.Add(
          at, "tls must be a mapping with intercept and passthrough, not " + Describe(v));
    std::set<std::string> seen;
    for (const auto& kv : v) {
      const YAML::Node& k = kv.first;
      const YAML::Mark m = MarkOf(k, kv.second);
      if (!k.IsScalar() || (k.Scalar() != "intercept" && k.Scalar() != "passthrough")) {
        errors_.Add(k.Mark(),
                    "tls: unknown key " + Describe(k) + "; known keys: intercept, passthrough");
        continue;
      }
      if (!seen.insert(k.Scalar()).second) {
        errors_.Add(k.Mark(), "tls: duplicate key \"" + k.Scalar() + "\"");
        continue;
      }
      LoadHosts("tls." + k.Scalar(), kv.second, m,
                k.Scalar() == "intercept" ? policy_.tls_intercept : policy_.tls_passthrough);
    }
  }

  void LoadBool(const std::string& key, const YAML::Node& v, const YAML::Mark& at, bool& out) {
    if (v.IsScalar() && NonStringKind(v) == "a boolean") {
      out = v.as<bool>();
      return;
    }
    errors_.Add(at, key + " must be true or false, not " + Describe(v));
  }

  void UnknownKey(const YAML::Node& k) {
    errors_.Add(k.Mark(),
                "unknown key \"" + k.Scalar() + "\"" + SuggestKnown(k.Scalar(), kKeys, "keys"));
  }

  void LoadName(const YAML::Node& v, const YAML::Mark& at) {
    if (!v.IsScalar() || v.Scalar().empty())
      return errors_.Add(at, "name must be a non-empty string, not " + Describe(v));
    const std::string& n = v.Scalar();
    if (!IsValidName(n))
      return errors_.Add(at, "name \"" + n + "\": use 1-64 letters, digits, '-', '_' and '.'");
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
    errors_.Add(at, "mode must be \"enforce\" or \"audit\", not " + Describe(v));
  }

  void LoadHosts(const std::string& key, const YAML::Node& v, const YAML::Mark& at,
                 std::vector<std::string>& out) {
    bool listed = errors_.ForEachString(key, v, at, [&](const std::string& s, const YAML::Mark& m) {
      std::string err;
      auto n = NormalizeHostPattern(s, &err);
      if (!n) return errors_.Add(m, key + ": " + err);
      if (Duplicate(key, *n, s, m)) return;
      out.push_back(*n);
    });
    // An empty allow list would silently mean "allow every host": refuse it.
    if (listed && key == "allowed_hosts" && v.size() == 0)
      errors_.Add(
          at,
          "allowed_hosts is empty, which would allow every host; list the hosts to allow, or "
          "leave the key out to allow all (denied_hosts: [\"*\"] denies all)");
  }

  void LoadCidrs(const YAML::Node& v, const YAML::Mark& at) {
    errors_.ForEachString("deny_cidrs", v, at, [&](const std::string& s, const YAML::Mark& m) {
      std::string err;
      auto cidr = ParseCidr(s, &err);
      if (!cidr) return errors_.Add(m, "deny_cidrs: " + err);
      if (Duplicate("deny_cidrs", cidr->ToString(), s, m)) return;
      policy_.deny_cidrs.push_back(*cidr);
    });
  }

  void LoadTcp(const YAML::Node& v, const YAML::Mark& at) {
    errors_.ForEachString("allow_tcp", v, at, [&](const std::string& s, const YAML::Mark& m) {
      std::string err;
      auto rule = ParseTcpRule(s, &err);
      if (!rule) return errors_.Add(m, "allow_tcp: " + err);
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
    errors_.Add(m, key + ": duplicate entry \"" + written + "\"" + same);
    return true;
  }

  LoadResult Finish() {
    LoadResult r;
    r.errors = errors_.Take();
    if (r.errors.empty()) r.policy = std::move(policy_);
    return r;
  }

  Policy policy_;
  YAML::Mark allow_unnamed_at_;
  // (list, canonical entry) -> the entry as first written
  std::map<std::pair<std::string, std::string>, std::string> first_written_;
  YamlErrors errors_;
  HandlerLoader handlers_{errors_};
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
