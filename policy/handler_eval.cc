#include "policy/handler_eval.h"

#include "policy/host_glob.h"

namespace egressd::policy {
namespace {

constexpr size_t kMaxExpandedValue = 64 * 1024;

// One step's run: expands its templates and refuses through `result`.
class StepRun {
 public:
  StepRun(const Handler& handler, const Step& step, size_t index, const TemplateContext& context,
          HandlerResult& result)
      : handler_(handler), step_(step), index_(index), context_(context), result_(result) {
    label_ = std::string(StepKindName(step.kind)) + " (step " + std::to_string(index + 1) + ")";
  }

  // "handler \"no-http\" step 1 (deny): " + detail, with `status`.
  void Refuse(int status, const std::string& detail) {
    result_.refused = true;
    result_.status = status;
    result_.step = label_;
    result_.refused_by = step_.kind;
    result_.reason = "handler \"" + handler_.name + "\" step " + std::to_string(index_ + 1) + " (" +
                     StepKindName(step_.kind) + "): " + detail;
    result_.edits.clear();
    result_.credential = false;
  }

  // `t` expanded, or nullopt after refusing (503). `what` names the value for
  // the reason ("the value of header \"Authorization\""); never the value.
  std::optional<std::string> Expand(const Template& t, const std::string& what) {
    std::string out;
    for (const auto& part : t.parts()) {
      switch (part.kind) {
        case Template::PartKind::kLiteral:
          out += part.text;
          break;
        case Template::PartKind::kInstance:
          out += context_.instance;
          break;
        case Template::PartKind::kParam: {
          const ParamValue* p = FindParam(part.text);
          if (!p) return Fail503("parameter \"" + part.text + "\" is not given by the binding");
          const auto* s = std::get_if<std::string>(p);
          if (!s)
            return Fail503("parameter \"" + part.text + "\" is a list where a string is needed");
          out += *s;
          break;
        }
        case Template::PartKind::kSecret: {
          SecretLookup lookup;
          if (context_.secrets) lookup = context_.secrets->Find(part.text);
          if (!lookup.value) {
            std::string m = "secret \"" + part.text + "\" is not set for instance \"" +
                            std::string(context_.instance) + "\"";
            if (!lookup.problem.empty()) m += " (" + lookup.problem + ")";
            Fail503(m);
            result_.missing_secret = true;
            return std::nullopt;
          }
          out += *lookup.value;
          break;
        }
      }
      if (out.size() > kMaxExpandedValue)
        return Fail503(what + " is longer than " + std::to_string(kMaxExpandedValue) +
                       " bytes after expansion");
    }
    if (out.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      return Fail503(what + " would contain CR, LF or NUL after expansion");
    return out;
  }

  // An entry list expanded: an entry that is exactly {{params.NAME}} of a
  // list stands for every string of it.
  std::optional<std::vector<std::string>> ExpandEntries(const std::string& what) {
    std::vector<std::string> out;
    for (const auto& entry : step_.entries) {
      // The loader refuses these; a reason may quote an entry, so fail closed.
      if (entry.uses_secret()) return Fail503("an entry cannot carry a secret");
      std::string whole = entry.whole_param();
      if (!whole.empty()) {
        const ParamValue* p = FindParam(whole);
        if (p && std::holds_alternative<std::vector<std::string>>(*p)) {
          for (const auto& v : std::get<std::vector<std::string>>(*p)) {
            if (v.size() > kMaxExpandedValue ||
                v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
              return Fail503("parameter \"" + whole + "\" holds an unusable entry");
            out.push_back(v);
          }
          continue;
        }
      }
      auto v = Expand(entry, what);
      if (!v) return std::nullopt;
      out.push_back(std::move(*v));
    }
    return out;
  }

 private:
  const ParamValue* FindParam(const std::string& name) const {
    if (!context_.params) return nullptr;
    auto it = context_.params->find(name);
    return it == context_.params->end() ? nullptr : &it->second;
  }

 public:
  // A value that cannot be made: refused in audit mode too (failed_closed).
  std::nullopt_t Fail503(const std::string& detail) {
    Refuse(503, detail);
    result_.failed_closed = true;
    return std::nullopt;
  }

 private:
  const Handler& handler_;
  const Step& step_;
  size_t index_;
  const TemplateContext& context_;
  HandlerResult& result_;
  std::string label_;
};

bool InScope(StepKind kind, StepScope scope) {
  switch (scope) {
    case StepScope::kHostOnly:
      return !IsRequestLevel(kind);
    case StepScope::kRequestOnly:
      return IsRequestLevel(kind);
    case StepScope::kAll:
      return true;
  }
  return true;
}

// Some expanded host glob matches `host`; a malformed one refuses (503)
// through `run` and sets `bad`.
bool HostMatches(const std::vector<std::string>& globs, std::string_view host, StepRun& run,
                 bool* bad) {
  for (const auto& g : globs) {
    std::string err;
    auto pattern = NormalizeHostPattern(g, &err);
    if (!pattern) {
      run.Fail503("bad host pattern: " + err);
      *bad = true;
      return false;
    }
    if (GlobMatch(*pattern, host)) return true;
  }
  return false;
}

}  // namespace

HandlerResult EvaluateHandler(const Handler& handler, const TemplateContext& context,
                              const RequestFacts& request, StepScope scope) {
  HandlerResult result;
  for (size_t i = 0; i < handler.steps.size() && !result.refused; ++i) {
    const Step& step = handler.steps[i];
    if (!InScope(step.kind, scope)) continue;
    StepRun run(handler, step, i, context, result);
    switch (step.kind) {
      case StepKind::kAllowHosts:
      case StepKind::kDenyHosts: {
        auto globs = run.ExpandEntries("an entry");
        if (!globs) break;
        bool bad = false;
        bool matches = HostMatches(*globs, request.host, run, &bad);
        if (bad) break;
        if (step.kind == StepKind::kAllowHosts && !matches)
          run.Refuse(step.status, "host \"" + std::string(request.host) + "\" is not allowed");
        if (step.kind == StepKind::kDenyHosts && matches)
          run.Refuse(step.status, "host \"" + std::string(request.host) + "\" is denied");
        break;
      }
      case StepKind::kDeny:
        run.Refuse(step.status, step.body.empty() ? "denied" : step.body);
        break;
      case StepKind::kAllowMethods: {
        auto methods = run.ExpandEntries("an entry");
        if (!methods) break;
        bool found = false;
        for (const auto& m : *methods) found = found || m == request.method;
        if (!found)
          run.Refuse(step.status, "method " + std::string(request.method) + " is not allowed");
        break;
      }
      case StepKind::kAllowPaths: {
        auto paths = run.ExpandEntries("an entry");
        if (!paths) break;
        bool found = false;
        for (const auto& p : *paths) found = found || PathGlobMatch(p, request.path);
        if (!found)
          run.Refuse(step.status, "path \"" + std::string(request.path) + "\" is not allowed");
        break;
      }
      case StepKind::kSetHeader:
      case StepKind::kSetQuery: {
        bool header = step.kind == StepKind::kSetHeader;
        auto value = run.Expand(
            step.value,
            std::string(header ? "the value of header \"" : "the value of query parameter \"") +
                step.name + "\"");
        if (!value) break;
        result.edits.push_back(
            {header ? RequestEdit::Kind::kSetHeader : RequestEdit::Kind::kSetQuery, step.name,
             std::move(*value)});
        result.credential = result.credential || step.value.uses_secret();
        break;
      }
      case StepKind::kRemoveHeader:
        result.edits.push_back({RequestEdit::Kind::kRemoveHeader, step.name, ""});
        break;
      case StepKind::kBasicAuth: {
        auto user = run.Expand(step.value, "the basic_auth user");
        if (!user) break;
        if (user->find(':') != std::string::npos) {
          run.Fail503("the basic_auth user contains ':' after expansion");
          break;
        }
        auto password = run.Expand(step.password, "the basic_auth password");
        if (!password) break;
        result.edits.push_back(
            {RequestEdit::Kind::kSetHeader, "Authorization", BasicAuthorization(*user, *password)});
        result.credential =
            result.credential || step.value.uses_secret() || step.password.uses_secret();
        break;
      }
    }
  }
  return result;
}

std::string BasicAuthorization(std::string_view user, std::string_view password) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string in;
  in.reserve(user.size() + 1 + password.size());
  in.append(user).append(":").append(password);
  std::string out = "Basic ";
  out.reserve(out.size() + (in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t n = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) |
                 uint32_t(uint8_t(in[i + 2]));
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t n = uint32_t(uint8_t(in[i])) << 16;
    if (rest == 2) n |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += rest == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool PathGlobMatch(std::string_view pattern, std::string_view path) {
  // Greedy match with one backtrack point (the last '*'): linear in practice,
  // O(pattern * path) at worst.
  size_t p = 0, s = 0;
  size_t star = std::string_view::npos, star_s = 0;
  while (s < path.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_s = s;
    } else if (p < pattern.size() && pattern[p] == path[s]) {
      ++p;
      ++s;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      s = ++star_s;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace egressd::policy
