#include "userspace/common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "userspace/common/unique_fd.h"

namespace egressd {

Status WriteFileAtomically(const std::string& path, std::string_view text, mode_t mode) {
  const std::string tmp = path + ".tmp";
  {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd.valid()) return EGRESSD_ERROR("cannot write {}: {}", tmp, strerror(errno));
    // An existing PATH.tmp keeps its old mode through O_CREAT: set it.
    if (fchmod(fd.get(), mode) != 0)
      return EGRESSD_ERROR("cannot set the mode of {}: {}", tmp, strerror(errno));
    if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      return EGRESSD_ERROR("cannot write {}: {}", tmp, strerror(errno));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0)
    return EGRESSD_ERROR("cannot replace {}: {}", path, strerror(errno));
  return {};
}

}  // namespace egressd
