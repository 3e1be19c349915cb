// state.json as read back at restart: the file lives in a root-only dir, but
// a torn disk, an older or newer daemon or a hand edit can leave anything in
// it, and the daemon must refuse it rather than crash or misread it. Never
// crashes or throws; an accepted state is written and read back the same;
// a refused one says why.
#include <cstdlib>
#include <set>
#include <string_view>

#include "userspace/sandbox/state_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto state = egressd::sandbox::ParseStateFile(text);
  if (!state.ok()) {
    if (state.status().message().empty()) std::abort();  // refused without a reason
    return 0;
  }
  std::set<uint32_t> ids;
  for (const auto& sb : state->sandboxes)
    if (!ids.insert(sb.id).second) std::abort();  // two sandboxes, one id
  auto reread = egressd::sandbox::ParseStateFile(egressd::sandbox::StateFileText(*state));
  if (!reread.ok() || !(*reread == *state)) std::abort();  // round trip diverged
  return 0;
}
