// Handler templates and steps on arbitrary text: a template comes from a
// policy file the sandbox's user may write, parameters from `egressctl
// handler set --params`, and the request facts from the sandbox. The input is
// split at newlines into: flags (the first byte), a template, a secret's
// value, a parameter, a host, a method, a path. Never crashes; an expanded
// value the proxy would send never holds CR, LF or NUL or exceeds 64 KiB, and
// a refusal's reason never holds the secret's value.
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policy/handler.h"
#include "policy/handler_eval.h"
#include "policy/host_glob.h"
#include "policy/template.h"

namespace {

using namespace egressd::policy;

class OneSecret : public SecretSource {
 public:
  OneSecret(std::string value, bool present) : value_(std::move(value)), present_(present) {}
  SecretLookup Find(std::string_view) const override {
    if (!present_) return {std::nullopt, "not set"};
    return {value_, ""};
  }

 private:
  std::string value_;
  bool present_;
};

std::vector<std::string_view> SplitLines(std::string_view text, size_t max) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < max) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) break;
    out.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  out.push_back(text);
  while (out.size() < max) out.push_back({});
  return out;
}

Step MakeStep(StepKind kind, const Template& t) {
  Step s;
  s.kind = kind;
  s.name = "X-Fuzz";
  if (kind == StepKind::kAllowHosts || kind == StepKind::kDenyHosts ||
      kind == StepKind::kAllowMethods || kind == StepKind::kAllowPaths)
    s.entries = {t};
  s.value = t;
  s.password = t;
  s.body = t.text();
  return s;
}

bool HasCrLfNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 * 1024) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto f = SplitLines(input, 7);
  const uint8_t flags = f[0].empty() ? 0 : static_cast<uint8_t>(f[0][0]);
  // The secret's value may hold any byte: '\x01' in the input stands for '\n'.
  std::string secret(f[2]);
  for (char& c : secret)
    if (c == '\x01') c = '\n';

  std::string error;
  auto t = Template::Parse(f[1], &error);
  if (!t) {
    if (error.empty()) std::abort();
    return 0;
  }
  if (t->text() != f[1]) std::abort();
  // Parts are never two literals in a row, and names are valid.
  for (size_t i = 0; i < t->parts().size(); ++i) {
    const auto& p = t->parts()[i];
    if (p.kind == Template::PartKind::kSecret && !IsValidSecretName(p.text)) std::abort();
    if (i > 0 && p.kind == Template::PartKind::kLiteral &&
        t->parts()[i - 1].kind == Template::PartKind::kLiteral)
      std::abort();
  }
  (void)t->whole_param();
  (void)PathGlobMatch(f[1], f[6]);

  Params params;
  if (flags & 1) {
    params["p"] = std::string(f[3]);
  } else {
    std::vector<std::string> list;
    for (auto s : SplitLines(f[3], 8)) list.emplace_back(s);
    params["p"] = list;
  }
  for (const auto& p : t->parts())
    if (p.kind == Template::PartKind::kParam && !params.count(p.text) && (flags & 2))
      params[p.text] = std::string(f[3]);

  Handler handler;
  handler.name = "fuzz";
  const StepKind kinds[] = {StepKind::kAllowHosts,   StepKind::kDenyHosts,  StepKind::kDeny,
                            StepKind::kAllowMethods, StepKind::kAllowPaths, StepKind::kSetHeader,
                            StepKind::kRemoveHeader, StepKind::kSetQuery,   StepKind::kBasicAuth};
  handler.steps.push_back(MakeStep(kinds[(flags >> 2) % 9], *t));
  handler.steps.push_back(MakeStep(kinds[(flags >> 4) % 9], *t));
  std::map<std::string, Handler> handlers{{"fuzz", handler}};
  (void)CheckBinding(handlers, HandlerBinding{"fuzz", params});
  (void)handler.needs_requests();
  (void)handler.uses_secrets();

  auto host = NormalizeHost(f[4]);
  RequestFacts request{host ? std::string_view(*host) : std::string_view("a.example"), f[5], f[6]};
  const StepScope scopes[] = {StepScope::kAll, StepScope::kHostOnly, StepScope::kRequestOnly};
  const StepScope scope = scopes[(flags >> 6) % 3];
  const bool present = !(flags & 0x80);
  OneSecret secrets(secret, present);
  TemplateContext context{"job-42", &params, &secrets};
  HandlerResult r = EvaluateHandler(handler, context, request, scope);
  if (r.refused) {
    if (r.status < 400 || r.status > 599 || r.reason.empty() || !r.edits.empty()) std::abort();
  } else {
    constexpr size_t kMaxValue = 6 + (2 * 64 * 1024 + 1 + 2) / 3 * 4;  // basic_auth of two maxima
    for (const auto& e : r.edits) {
      if (HasCrLfNul(e.value) || e.value.size() > kMaxValue) std::abort();
      if (e.name.empty()) std::abort();
    }
  }
  // The same with a marker as the secret: a reason never holds it.
  const std::string marker = "\x7f-secret-marker-\x7f";
  if (input.find(marker) == std::string_view::npos) {
    OneSecret marked(marker, present);
    TemplateContext marked_context{"job-42", &params, &marked};
    HandlerResult m = EvaluateHandler(handler, marked_context, request, scope);
    if (m.reason.find(marker) != std::string::npos || m.step.find(marker) != std::string::npos)
      std::abort();
  }
  std::string basic = BasicAuthorization(f[1], secret);
  if (basic.size() != 6 + (f[1].size() + 1 + secret.size() + 2) / 3 * 4) std::abort();
  return 0;
}
