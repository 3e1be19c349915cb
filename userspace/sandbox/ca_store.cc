#include "userspace/sandbox/ca_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "userspace/common/atomic_file.h"
#include "userspace/common/unique_fd.h"
#include "userspace/sandbox/instance_name.h"

namespace egressd::sandbox {
namespace {

constexpr const char* kKeyFile = "/ca.key";
constexpr const char* kCertFile = "/ca.crt";
constexpr size_t kMaxPemBytes = 64 * 1024;  // ours are under 1 KiB

// The whole of a small regular file (not through a symlink).
StatusOr<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return EGRESSD_ERROR("cannot read {}: {}", path, strerror(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return EGRESSD_ERROR("{} is not a regular file", path);
  std::string text(kMaxPemBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return EGRESSD_ERROR("cannot read {}: {}", path, strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxPemBytes) return EGRESSD_ERROR("{} is too large to be a CA file", path);
  text.resize(got);
  return text;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

Status RemoveFile(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return EGRESSD_ERROR("cannot remove {}: {}", path, strerror(errno));
  return {};
}

}  // namespace

StatusOr<std::string> CaStore::InstanceDir(const std::string& instance) const {
  Status valid = CheckInstanceName(instance);
  if (!valid.ok()) return valid;
  return dir_ + "/" + instance;
}

// A directory of root's only (mode 0700 whatever the umask), not a symlink.
Status CaStore::MakeDir(const std::string& path) const {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return EGRESSD_ERROR("cannot create {}: {}", path, strerror(errno));
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return EGRESSD_ERROR("{} is not a directory", path);
  if ((st.st_mode & 0777) != 0700 && chmod(path.c_str(), 0700) != 0)
    return EGRESSD_ERROR("cannot make {} root's only: {}", path, strerror(errno));
  return {};
}

StatusOr<std::shared_ptr<ca::LeafCache>> CaStore::Create(const std::string& instance) const {
  auto dir = InstanceDir(instance);
  if (!dir.ok()) return dir.status();
  auto authority = ca::SandboxCa::Create(instance);
  if (!authority.ok()) return authority.status();
  auto key = (*authority)->PrivateKeyPem();
  if (!key.ok()) return key.status();
  auto leaves = ca::LeafCache::Create(*authority);
  if (!leaves.ok()) return leaves.status();
  EGRESSD_RETURN_IF_ERROR(MakeDir(dir_));
  EGRESSD_RETURN_IF_ERROR(MakeDir(*dir));
  Status saved = WriteFileAtomically(*dir + kKeyFile, *key, 0600);
  if (saved.ok()) saved = WriteFileAtomically(*dir + kCertFile, (*authority)->cert_pem(), 0644);
  if (!saved.ok()) {
    Remove(instance);
    return saved;
  }
  return *leaves;
}

StatusOr<std::shared_ptr<ca::LeafCache>> CaStore::Load(const std::string& instance) const {
  auto dir = InstanceDir(instance);
  if (!dir.ok()) return dir.status();
  const std::string key_path = *dir + kKeyFile;
  const std::string cert_path = *dir + kCertFile;
  if (!Exists(key_path) && !Exists(cert_path)) {
    spdlog::warn("sandbox {}: no saved CA in {}, creating one", instance, *dir);
    return Create(instance);
  }
  auto key = ReadSmallFile(key_path);
  if (!key.ok()) return key.status();
  auto cert = ReadSmallFile(cert_path);
  if (!cert.ok()) return cert.status();
  auto authority = ca::SandboxCa::FromPem(*cert, *key);
  if (!authority.ok()) return EGRESSD_ERROR("{}: {}", *dir, authority.status().message());
  return ca::LeafCache::Create(*authority);
}

void CaStore::Remove(const std::string& instance) const {
  Status st = RemoveFiles(instance);
  if (!st.ok()) spdlog::error("sandbox {}: its CA: {}", instance, st.ToString());
}

Status CaStore::RemoveFiles(const std::string& instance) const {
  auto dir = InstanceDir(instance);
  if (!dir.ok()) return dir.status();
  for (const char* file : {kKeyFile, kCertFile})
    for (const char* suffix : {"", ".tmp"})
      EGRESSD_RETURN_IF_ERROR(RemoveFile(*dir + file + suffix));
  if (rmdir(dir->c_str()) != 0 && errno != ENOENT)
    return EGRESSD_ERROR("cannot remove {}: {}", *dir, strerror(errno));
  return {};
}

void CaStore::Rename(const std::string& from, const std::string& to) const {
  auto from_dir = InstanceDir(from);
  auto to_dir = InstanceDir(to);
  Status st = !from_dir.ok() ? from_dir.status() : !to_dir.ok() ? to_dir.status() : Status();
  if (st.ok()) st = RemoveFiles(to);  // a leftover: `to` is attached nowhere
  if (st.ok() && rename(from_dir->c_str(), to_dir->c_str()) != 0)
    st = EGRESSD_ERROR("cannot move {} to {}: {}", *from_dir, *to_dir, strerror(errno));
  if (!st.ok()) spdlog::error("sandbox {} (renamed {}): its CA: {}", from, to, st.ToString());
}

size_t CaStore::Prune(const std::set<std::string>& keep) const {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(dir_.c_str()), closedir);
  if (!dir) return 0;
  std::vector<std::string> stale;
  while (dirent* entry = readdir(dir.get())) {
    std::string name = entry->d_name;
    if (name == "." || name == ".." || keep.count(name)) continue;
    stale.push_back(name);
  }
  size_t removed = 0;
  for (const auto& name : stale) {
    Status st = RemoveFiles(name);
    if (!st.ok()) {
      spdlog::warn("ca store: a CA no sandbox uses: {}", st.ToString());
      continue;
    }
    spdlog::info("ca store: removed the CA of instance {}, attached nowhere", name);
    ++removed;
  }
  return removed;
}

}  // namespace egressd::sandbox
