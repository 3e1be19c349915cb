#include "userspace/sandbox/instance_name.h"

namespace egressd::sandbox {

Status CheckInstanceName(std::string_view name) {
  constexpr size_t kMaxName = 255;
  if (name.empty()) return EGRESSD_ERROR("an instance name cannot be empty");
  if (name.size() > kMaxName)
    return EGRESSD_ERROR("instance name too long ({} bytes, at most {})", name.size(), kMaxName);
  if (name == "." || name == "..") return EGRESSD_ERROR("\"{}\" cannot be an instance name", name);
  for (unsigned char c : name) {
    if (c == '/') return EGRESSD_ERROR("instance name \"{}\": no '/' allowed", name);
    if (c < 0x20 || c == 0x7f)
      return EGRESSD_ERROR("instance name: no control character allowed (found 0x{:02x})", c);
  }
  return {};
}

}  // namespace egressd::sandbox
