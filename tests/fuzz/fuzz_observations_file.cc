// observations.json (audit-mode observations) as read back at restart: the
// host names in it came from sandboxes (SNI, Host, DNS), and the file may be
// torn or hand-edited. Never crashes or throws; accepted entries are written
// and read back the same (deny_cidrs included); a refused file says why.
#include <cstdlib>
#include <string_view>

#include "userspace/sandbox/observations_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto entries = egressd::sandbox::ParseObservationsFile(text);
  if (!entries.ok()) {
    if (entries.status().message().empty()) std::abort();  // refused without a reason
    return 0;
  }
  auto reread =
      egressd::sandbox::ParseObservationsFile(egressd::sandbox::ObservationsFileText(*entries));
  if (!reread.ok() || !(*reread == *entries)) std::abort();  // round trip diverged
  return 0;
}
