// The policy loader on arbitrary text: a policy file given to
// `egressctl run --policy FILE` may be written by the sandbox's own user.
// Never crashes, never throws; a text it accepts compiles, and a text it
// refuses says why with a line inside the text. With handlers: every binding
// it accepts names a defined handler whose parameters fit (no binding fails
// closed at run time), no catch_all adds a credential, and deciding and
// running the handlers never crashes.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/compiled_policy.h"
#include "policy/policy_loader.h"

namespace {

void CheckBound(const egressd::policy::CompiledPolicy& compiled, const std::string& host) {
  auto bound = compiled.HandlerFor(host);
  if (!bound || !bound->handler || !bound->problem.empty()) std::abort();
  if (!bound->by_host && bound->handler->uses_secrets()) std::abort();
  (void)compiled.DecideHost(host);
  (void)compiled.Intercepts(host);
  (void)compiled.InterceptRefusal(host);
  egressd::policy::RequestFacts request{host, "GET", "/"};
  egressd::policy::HandlerResult run = compiled.RunHandler(request, nullptr);
  if (run.refused && (run.status < 400 || run.status > 599)) std::abort();
}

void CheckHandlers(const egressd::policy::CompiledPolicy& compiled) {
  (void)compiled.can_intercept();
  for (const auto& b : compiled.policy().by_host) {
    std::string host = b.host;
    std::replace(host.begin(), host.end(), '*', 'x');
    if (!host.empty() && host[0] == '.') host = "x" + host;
    if (egressd::policy::NormalizeHost(host)) CheckBound(compiled, host);
  }
  if (compiled.policy().catch_all) CheckBound(compiled, "unbound.invalid");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > egressd::policy::kMaxPolicyFileBytes) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  egressd::policy::LoadResult r = egressd::policy::ParsePolicy(text);
  if (r.ok()) {
    egressd::policy::CompiledPolicy compiled(*r.policy);
    if (compiled.invalid_entry()) std::abort();  // the loader let a bad entry through
    CheckHandlers(compiled);
    return 0;
  }
  if (r.errors.empty()) std::abort();  // refused without a reason
  const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  for (const auto& e : r.errors) {
    if (e.message.empty() || e.line < 0 || e.line > lines + 1) std::abort();
  }
  return 0;
}
