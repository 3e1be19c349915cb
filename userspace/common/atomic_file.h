// Replacing a file so that a reader (or a restart after a crash) sees either
// the old contents or the new ones, never a mix: write PATH.tmp, then rename.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "userspace/common/status.h"

namespace egressd {

// Writes `text` to `path` atomically, created with `mode` (0600 by default:
// the state dir's files are root's only), whatever the umask.
Status WriteFileAtomically(const std::string& path, std::string_view text, mode_t mode = 0600);

}  // namespace egressd
