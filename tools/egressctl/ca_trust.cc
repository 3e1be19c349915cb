#include "tools/egressctl/ca_trust.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>
#include <vector>

namespace egressctl {
namespace {

constexpr unsigned long kLockedDown = MS_NOSUID | MS_NODEV | MS_NOEXEC;

bool ReadFile(const char* path, std::string* out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out->append(buf, static_cast<size_t>(n));
  int err = errno;
  close(fd);
  errno = err;
  return n == 0;
}

// A new root-owned 0644 file (never an existing one, never through a link).
bool WriteNewFile(const char* path, const std::string& data) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = fchmod(fd, 0644) == 0;  // whatever the umask
  for (size_t done = 0; ok && done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  int err = errno;
  if (close(fd) != 0 && ok) return false;
  errno = err;
  return ok;
}

bool MountReadOnlyBind(const char* source, const char* target) {
  return mount(source, target, nullptr, MS_BIND, nullptr) == 0 &&
         mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | kLockedDown, nullptr) ==
             0;
}

}  // namespace

bool IsOneCertificatePem(const std::string& pem) {
  static const std::string kBegin = "-----BEGIN CERTIFICATE-----\n";
  static const std::string kEnd = "-----END CERTIFICATE-----";
  size_t end = pem.find(kEnd);
  if (pem.compare(0, kBegin.size(), kBegin) != 0 || end == std::string::npos) return false;
  std::string after = pem.substr(end + kEnd.size());
  return (after.empty() || after == "\n") && pem.find("-----", kBegin.size()) == end;
}

bool TrustSandboxCa(const std::string& ca_pem, std::string* stage) {
  // The host's roots, and each distinct system bundle file to cover (two
  // names of one file, through a symlink, are covered once).
  std::string roots;
  std::vector<const char*> targets;
  std::vector<std::pair<dev_t, ino_t>> seen;
  for (const char* path : kSystemBundles) {
    struct stat st {};
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    bool again = false;
    for (const auto& [dev, ino] : seen) again = again || (dev == st.st_dev && ino == st.st_ino);
    if (again) continue;
    seen.emplace_back(st.st_dev, st.st_ino);
    if (targets.empty()) {
      *stage = std::string("reading the system roots from ") + path;
      if (!ReadFile(path, &roots)) return false;
      if (!roots.empty() && roots.back() != '\n') roots += '\n';
    }
    targets.push_back(path);
  }

  // The mount point: a root-owned directory (a link there could send the
  // tmpfs anywhere in this namespace).
  *stage = std::string("creating ") + kTrustDir;
  if (mkdir(kTrustDir, 0755) != 0 && errno != EEXIST) return false;
  struct stat dir {};
  *stage = std::string("checking ") + kTrustDir;
  if (lstat(kTrustDir, &dir) != 0) return false;
  if (!S_ISDIR(dir.st_mode) || dir.st_uid != 0) {
    *stage = std::string(kTrustDir) + " is not a root-owned directory";
    errno = ENOTDIR;
    return false;
  }
  *stage = std::string("mounting a tmpfs on ") + kTrustDir;
  std::string options =
      "mode=0755,nr_inodes=16,size=" + std::to_string(roots.size() + 2 * ca_pem.size() + 65536);
  if (mount("tmpfs", kTrustDir, "tmpfs", kLockedDown, options.c_str()) != 0) return false;
  *stage = std::string("writing ") + kTrustBundle;
  if (!WriteNewFile(kTrustBundle, roots + ca_pem)) return false;
  *stage = std::string("writing ") + kTrustCa;
  if (!WriteNewFile(kTrustCa, ca_pem)) return false;
  // Read-only for every mount of it (the superblock), this one included.
  *stage = std::string("remounting ") + kTrustDir + " read-only";
  if (mount(nullptr, kTrustDir, nullptr, MS_REMOUNT | MS_RDONLY | kLockedDown, nullptr) != 0)
    return false;

  for (const char* target : targets) {
    *stage = std::string("mounting ") + kTrustBundle + " over " + target;
    if (!MountReadOnlyBind(kTrustBundle, target)) return false;
  }
  *stage = "setting the CA variables";
  for (const char* name : kBundleVariables)
    if (setenv(name, kTrustBundle, 1) != 0) return false;
  for (const char* name : kCaVariables)
    if (setenv(name, kTrustCa, 1) != 0) return false;
  return true;
}

}  // namespace egressctl
