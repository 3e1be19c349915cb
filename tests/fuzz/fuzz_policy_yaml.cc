// The policy loader on arbitrary text: a policy file given to
// `egressctl run --policy FILE` may be written by the sandbox's own user.
// Never crashes, never throws; a text it accepts compiles, and a text it
// refuses says why with a line inside the text.
#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "policy/compiled_policy.h"
#include "policy/policy_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > egressd::policy::kMaxPolicyFileBytes) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  egressd::policy::LoadResult r = egressd::policy::ParsePolicy(text);
  if (r.ok()) {
    egressd::policy::CompiledPolicy compiled(*r.policy);
    if (compiled.invalid_entry()) std::abort();  // the loader let a bad entry through
    return 0;
  }
  if (r.errors.empty()) std::abort();  // refused without a reason
  const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  for (const auto& e : r.errors) {
    if (e.message.empty() || e.line < 0 || e.line > lines + 1) std::abort();
  }
  return 0;
}
