// What an instance name may be. The name of a sandbox's directory in the
// state dir (its CA today, its secrets next), so it must be one safe path
// component: checked at attach, and again by whatever builds a path from it.
#pragma once

#include <string_view>

#include "userspace/common/status.h"

namespace egressd::sandbox {

// 1 to 255 bytes (NAME_MAX), not "." or "..", no '/', no control character
// (NUL, newline, ...). Container ids, job ids and cgroup directory names
// (the default) pass.
Status CheckInstanceName(std::string_view name);

}  // namespace egressd::sandbox
