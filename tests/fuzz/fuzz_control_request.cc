// A control API request line on arbitrary bytes: the socket is root-only, but
// a request is still input the daemon must survive (a buggy or hostile
// client). Never crashes or throws; a request it accepts reads back the same
// from the JSON egressctl would send for it; a refused one says why.
#include <cstdlib>
#include <string_view>

#include "userspace/control/control_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  // ControlServer hands over what precedes the first newline.
  line = line.substr(0, line.find('\n'));
  auto request = egressd::control::ParseControlRequest(line);
  if (!request.ok()) {
    if (request.status().message().empty()) std::abort();  // refused without a reason
    return 0;
  }
  // dump() throws on invalid UTF-8: an accepted string must be valid.
  std::string again = egressd::control::ControlRequestJson(*request).dump();
  auto reread = egressd::control::ParseControlRequest(again);
  if (!reread.ok() || !(*reread == *request)) std::abort();  // round trip diverged
  return 0;
}
