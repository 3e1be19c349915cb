#include "userspace/secrets/secret_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "policy/template.h"
#include "userspace/common/unique_fd.h"
#include "userspace/sandbox/instance_name.h"

namespace egressd::secrets {
namespace {

// `<dir>/instances/<INSTANCE>/`: so no shared secret can be named "instances".
constexpr char kInstancesDir[] = "instances";
// Set's temporary file, "NAME#set": '#' is not in a secret name, so a
// refresh that sees it in passing skips it.
constexpr char kTempSuffix[] = "#set";

using Entries = std::map<std::string, SecretEntry, std::less<>>;

int64_t Nanos(const timespec& ts) {
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

SecretEntry::Identity IdentityOf(const struct stat& st) {
  return {.dev = st.st_dev,
          .ino = st.st_ino,
          .size = st.st_size,
          .mtime_ns = Nanos(st.st_mtim),
          .ctime_ns = Nanos(st.st_ctim),
          .mode = st.st_mode,
          .uid = st.st_uid};
}

std::string ModeText(mode_t mode) {
  return fmt::format("{:04o}", mode & 07777);
}

std::string OwnerHint() {
  return geteuid() == 0 ? std::string("root") : std::to_string(geteuid());
}

// Why a directory of secrets cannot be trusted, or "". Anyone who can write
// to it could swap a secret (or the directory below) for their own.
std::string DirectoryProblem(const std::string& path, const struct stat& st) {
  if (S_ISLNK(st.st_mode))
    return fmt::format("{} is a symbolic link: it must be a directory", path);
  if (!S_ISDIR(st.st_mode)) return fmt::format("{} is not a directory", path);
  if (st.st_uid != geteuid())
    return fmt::format("{} is owned by uid {}, not by egressd's user: chown {} it", path, st.st_uid,
                       OwnerHint());
  if (st.st_mode & 022)
    return fmt::format("{} is writable by group or others (mode {}): chmod go-w it", path,
                       ModeText(st.st_mode));
  return "";
}

// Why a secret file cannot be used, or "" (`st` from lstat or fstat).
std::string FileProblem(const std::string& path, const struct stat& st) {
  if (S_ISLNK(st.st_mode))
    return fmt::format("{} is a symbolic link: a secret must be a regular file", path);
  if (!S_ISREG(st.st_mode)) return fmt::format("{} is not a regular file", path);
  if (st.st_uid != geteuid())
    return fmt::format("{} is owned by uid {}, not by egressd's user: chown {} it", path, st.st_uid,
                       OwnerHint());
  if (st.st_mode & 077)
    return fmt::format("{} is {} by group or others (mode {}): chmod 600 it", path,
                       (st.st_mode & 044) ? "readable" : "accessible", ModeText(st.st_mode));
  // One trailing newline is not part of the value.
  if (static_cast<size_t>(st.st_size) > kMaxSecretBytes + 1)
    return fmt::format("{} is too large for a secret ({} bytes, at most {})", path, st.st_size,
                       kMaxSecretBytes);
  return "";
}

int64_t RealtimeNanos() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return Nanos(now);
}

// File times come from a coarse clock (a tick of a few ms): a second write
// of the same size within the tick of the first leaves the same identity.
// So an entry read within kRacyNanos of its file's change is read again (as
// git does with "racy" index entries); one read later is safe to reuse.
constexpr int64_t kRacyNanos = 50'000'000;
bool SafeToReuse(const SecretEntry& old) {
  return old.read_at_ns - old.identity.ctime_ns > kRacyNanos;
}

// Reads an open secret file: its value (one trailing "\n" stripped), or a problem.
void ReadValue(int fd, const std::string& path, SecretEntry* entry) {
  std::string data(kMaxSecretBytes + 2, '\0');  // enough to see "too large"
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      entry->problem = fmt::format("cannot read {}: {}", path, strerror(errno));
      return;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  if (!data.empty() && data.back() == '\n') data.pop_back();
  if (data.size() > kMaxSecretBytes) {
    entry->problem =
        fmt::format("{} is too large for a secret (more than {} bytes)", path, kMaxSecretBytes);
    return;
  }
  entry->value = std::move(data);
}

// One secret file, or nullopt if it is gone. An entry whose file did not
// change since `old` is reused without reading the file again.
std::optional<SecretEntry> ReadEntry(int dir_fd, const std::string& dir_path,
                                     const std::string& name, const std::string& dir_problem,
                                     const SecretEntry* old, SecretCounters* counters) {
  struct stat st {};
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return std::nullopt;
  if (old && old->identity == IdentityOf(st) && old->directory_problem == dir_problem &&
      SafeToReuse(*old))
    return *old;
  const std::string path = dir_path + "/" + name;
  SecretEntry entry;
  entry.identity = IdentityOf(st);
  entry.directory_problem = dir_problem;
  entry.read_at_ns = RealtimeNanos();
  entry.changed_sec = st.st_mtim.tv_sec;
  entry.problem = dir_problem.empty() ? FileProblem(path, st) : dir_problem;
  if (entry.problem.empty()) {
    UniqueFd fd(
        openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    struct stat now {};
    if (!fd.valid() && errno == ENOENT) return std::nullopt;
    if (!fd.valid()) {
      struct stat link {};
      link.st_mode = S_IFLNK;
      entry.problem = errno == ELOOP ? FileProblem(path, link)
                                     : fmt::format("cannot open {}: {}", path, strerror(errno));
    } else if (fstat(fd.get(), &now) != 0) {
      entry.problem = fmt::format("cannot stat {}: {}", path, strerror(errno));
    } else {
      // What was opened is what counts (it may have been replaced meanwhile).
      entry.identity = IdentityOf(now);
      entry.changed_sec = now.st_mtim.tv_sec;
      entry.problem = FileProblem(path, now);
      if (entry.problem.empty()) ReadValue(fd.get(), path, &entry);
    }
    counters->file_reads++;
  }
  // Logged once per change of the file (a directory's problem is logged
  // once for all its files): a name and a path, never a value.
  const bool same_as_before =
      old && old->identity == entry.identity && old->problem == entry.problem;
  if (!entry.value && dir_problem.empty() && !same_as_before) {
    counters->unusable++;
    spdlog::warn("secrets: {} is unusable: {}", name, entry.problem);
  }
  return entry;
}

// Every secret file in the open directory `dir_fd`. `dir_problem`: the
// directory cannot be trusted, so its files are listed but not read.
Entries ReadDirectory(int dir_fd, const std::string& dir_path, const std::string& dir_problem,
                      bool top, const Entries* old, SecretCounters* counters) {
  Entries out;
  int listing_fd = dup(dir_fd);
  if (listing_fd < 0) return out;
  DIR* listing = fdopendir(listing_fd);
  if (!listing) {
    close(listing_fd);
    return out;
  }
  rewinddir(listing);
  while (dirent* de = readdir(listing)) {
    std::string name = de->d_name;
    // Not secrets: instances/, Set's temporary files, editors' backups ("x~").
    if (!policy::IsValidSecretName(name) || (top && name == kInstancesDir)) continue;
    const SecretEntry* before = nullptr;
    if (old) {
      auto it = old->find(name);
      if (it != old->end()) before = &it->second;
    }
    if (auto entry = ReadEntry(dir_fd, dir_path, name, dir_problem, before, counters))
      out.emplace(std::move(name), std::move(*entry));
  }
  closedir(listing);
  return out;
}

// Opens `name` in `parent_fd` as a directory of secrets (never through a
// symbolic link): the fd, and its problem ("" if none).
std::pair<UniqueFd, std::string> OpenSecretDirectory(int parent_fd, const std::string& name,
                                                     const std::string& path) {
  UniqueFd fd(openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    struct stat st {};
    if (fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      return {UniqueFd(), DirectoryProblem(path, st).empty()
                              ? fmt::format("cannot open {}: {}", path, strerror(errno))
                              : DirectoryProblem(path, st)};
    return {UniqueFd(), fmt::format("cannot open {}: {}", path, strerror(errno))};
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return {UniqueFd(), fmt::format("cannot stat {}: {}", path, strerror(errno))};
  return {std::move(fd), DirectoryProblem(path, st)};
}

bool SameEntries(const Entries& a, const Entries& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.first == y.first && x.second.identity == y.second.identity &&
           x.second.problem == y.second.problem && x.second.value == y.second.value;
  });
}

bool SameSnapshot(const SecretSnapshot& a, const SecretSnapshot& b) {
  return a.shared_problem == b.shared_problem && a.instances_problem == b.instances_problem &&
         a.instance_problems == b.instance_problems && SameEntries(a.shared, b.shared) &&
         std::equal(a.instances.begin(), a.instances.end(), b.instances.begin(), b.instances.end(),
                    [](const auto& x, const auto& y) {
                      return x.first == y.first && SameEntries(x.second, y.second);
                    });
}

// Directory problems are logged when they appear or change, not at every refresh.
void LogNewProblem(const std::string& before, const std::string& now) {
  if (!now.empty() && now != before) spdlog::error("secrets: {}", now);
  if (now.empty() && !before.empty()) spdlog::info("secrets: resolved: {}", before);
}

policy::SecretLookup LookupOf(const SecretEntry& entry) {
  if (entry.value) return {entry.value, ""};
  return {std::nullopt, entry.problem};
}

// A directory of secrets, created root-only if missing; one that exists
// must be a directory (not a symbolic link) and is left as it is.
Status MakePrivateDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0) {
    if (chmod(path.c_str(), 0700) != 0)
      return EGRESSD_ERROR("cannot set the mode of {}: {}", path, strerror(errno));
    return {};
  }
  if (errno != EEXIST) return EGRESSD_ERROR("cannot create {}: {}", path, strerror(errno));
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0)
    return EGRESSD_ERROR("cannot stat {}: {}", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return EGRESSD_ERROR("{}", DirectoryProblem(path, st));
  return {};
}

// `dir`/`name`, replaced atomically by a root-only file holding `value` and
// one "\n" (stripped again when read). Errors never hold the value.
Status WriteSecretFile(const std::string& dir, const std::string& name, std::string_view value) {
  const std::string path = dir + "/" + name;
  const std::string tmp = path + kTempSuffix;
  unlink(tmp.c_str());  // a leftover of a crash
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return EGRESSD_ERROR("cannot write {}: {}", tmp, strerror(errno));
  auto fail = [&](const char* what) {
    Status error = EGRESSD_ERROR("cannot {} {}: {}", what, tmp, strerror(errno));
    unlink(tmp.c_str());
    return error;
  };
  if (fchmod(fd.get(), 0600) != 0) return fail("set the mode of");
  std::string text;
  text.reserve(value.size() + 1);
  text.append(value).push_back('\n');
  for (size_t sent = 0; sent < text.size();) {
    ssize_t n = write(fd.get(), text.data() + sent, text.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write");
    sent += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0) return fail("sync");
  fd.Reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  return {};
}

std::string InstanceSuffix(std::string_view instance) {
  return instance.empty() ? std::string() : fmt::format(" for instance \"{}\"", instance);
}

}  // namespace

Status CheckName(std::string_view name) {
  if (policy::IsValidSecretName(name)) return {};
  if (name.size() > policy::kMaxSecretNameLength)
    return EGRESSD_ERROR("secret name too long ({} characters, at most {})", name.size(),
                         policy::kMaxSecretNameLength);
  return EGRESSD_ERROR(
      "secret name \"{}\": expected 1 to {} of A-Z a-z 0-9 _ . - (and not \".\" or \"..\")", name,
      policy::kMaxSecretNameLength);
}

policy::SecretLookup SecretSnapshot::Find(std::string_view instance, std::string_view name) const {
  if (!shared_problem.empty()) return {std::nullopt, shared_problem};
  if (!instance.empty()) {
    if (!instances_problem.empty()) return {std::nullopt, instances_problem};
    if (auto bad = instance_problems.find(instance); bad != instance_problems.end())
      return {std::nullopt, bad->second};
    if (auto own = instances.find(instance); own != instances.end())
      if (auto it = own->second.find(name); it != own->second.end()) return LookupOf(it->second);
  }
  if (auto it = shared.find(name); it != shared.end()) return LookupOf(it->second);
  return {std::nullopt, "not set"};
}

policy::SecretLookup LazyInstanceSecrets::Find(std::string_view name) const {
  if (!secrets_) secrets_.emplace(store_.ForInstance(std::string(instance_)));
  return secrets_->Find(name);
}

policy::SecretLookup InstanceSecrets::Find(std::string_view name) const {
  return snapshot_->Find(instance_, name);
}

SecretStore::SecretStore(std::string dir)
    : dir_(std::move(dir)), snapshot_(std::make_shared<const SecretSnapshot>()) {}

SecretStore::~SecretStore() {
  Stop();
}

Status SecretStore::Start(std::chrono::milliseconds interval) {
  struct stat st {};
  if (stat(dir_.c_str(), &st) != 0 && errno == ENOENT) {
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(dir_).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return EGRESSD_ERROR("--secrets-dir {}: {}", dir_, ec.message());
    if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
      return EGRESSD_ERROR("--secrets-dir {}: cannot create it: {}", dir_, strerror(errno));
    chmod(dir_.c_str(), 0700);
    spdlog::info("secrets: created {} (mode 0700)", dir_);
  }
  Status first = Refresh();  // a problem is logged, and each secret is refused with it
  (void)first;
  {
    std::lock_guard lock(thread_mu_);
    stop_ = false;
  }
  thread_ = std::thread([this, interval] {
    std::unique_lock lock(thread_mu_);
    while (!stop_) {
      thread_cv_.wait_for(lock, interval, [this] { return stop_; });
      if (stop_) break;
      lock.unlock();
      (void)Refresh();  // problems are in the snapshot and logged once
      lock.lock();
    }
  });
  return {};
}

void SecretStore::Stop() {
  {
    std::lock_guard lock(thread_mu_);
    stop_ = true;
  }
  thread_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const SecretSnapshot> SecretStore::Current() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

void SecretStore::Publish(std::shared_ptr<const SecretSnapshot> next) {
  std::shared_ptr<const SecretSnapshot> old;
  {
    std::lock_guard lock(snapshot_mu_);
    old = std::exchange(snapshot_, std::move(next));
  }
  // `old` is freed here, outside the lock (unless a reader still holds it).
}

Status SecretStore::Refresh() {
  std::lock_guard refresh(refresh_mu_);
  const std::shared_ptr<const SecretSnapshot> published = Current();
  // What the last refresh read (newer than `published` when only the times
  // of reading changed): the base for reusing unchanged files.
  const std::shared_ptr<const SecretSnapshot> old = last_read_ ? last_read_ : published;
  auto next = std::make_shared<SecretSnapshot>();
  Status result;
  UniqueFd top(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat st {};
  if (!top.valid() || fstat(top.get(), &st) != 0) {
    next->shared_problem = fmt::format("cannot open the secrets dir {}: {}", dir_, strerror(errno));
    result = EGRESSD_ERROR("{}", next->shared_problem);
  } else {
    next->shared_problem = DirectoryProblem(dir_, st);
    next->shared = ReadDirectory(top.get(), dir_, next->shared_problem, /*top=*/true, &old->shared,
                                 &counters_);
    const std::string instances_path = dir_ + "/" + kInstancesDir;
    struct stat instances_st {};
    if (fstatat(top.get(), kInstancesDir, &instances_st, AT_SYMLINK_NOFOLLOW) == 0) {
      auto [instances_fd, problem] = OpenSecretDirectory(top.get(), kInstancesDir, instances_path);
      next->instances_problem = problem;
      if (instances_fd.valid()) ReadInstances(instances_fd.get(), instances_path, *old, next.get());
    }
  }
  LogNewProblem(old->shared_problem, next->shared_problem);
  LogNewProblem(old->instances_problem, next->instances_problem);
  for (const auto& [instance, problem] : next->instance_problems) {
    auto before = old->instance_problems.find(instance);
    LogNewProblem(before == old->instance_problems.end() ? "" : before->second, problem);
  }
  if (SameSnapshot(*published, *next)) {
    last_read_ = std::move(next);
    return result;
  }
  next->generation = published->generation + 1;
  counters_.refreshes++;
  last_read_ = next;
  Publish(std::move(next));
  return result;
}

void SecretStore::ReadInstances(int instances_fd, const std::string& instances_path,
                                const SecretSnapshot& old, SecretSnapshot* next) {
  int listing_fd = dup(instances_fd);
  if (listing_fd < 0) return;
  DIR* listing = fdopendir(listing_fd);
  if (!listing) {
    close(listing_fd);
    return;
  }
  rewinddir(listing);
  while (dirent* de = readdir(listing)) {
    std::string instance = de->d_name;
    if (instance == "." || instance == ".." || !sandbox::CheckInstanceName(instance).ok()) continue;
    const std::string path = instances_path + "/" + instance;
    auto [fd, problem] = OpenSecretDirectory(instances_fd, instance, path);
    if (!fd.valid() && problem.empty()) continue;
    if (!problem.empty()) next->instance_problems[instance] = problem;
    if (!fd.valid()) continue;
    // Files under an untrusted directory above are listed, not read.
    std::string effective = !next->shared_problem.empty()      ? next->shared_problem
                            : !next->instances_problem.empty() ? next->instances_problem
                                                               : problem;
    auto before = old.instances.find(instance);
    next->instances[instance] =
        ReadDirectory(fd.get(), path, effective, /*top=*/false,
                      before == old.instances.end() ? nullptr : &before->second, &counters_);
  }
  closedir(listing);
}

std::string SecretStore::DirOf(std::string_view instance) const {
  if (instance.empty()) return dir_;
  return fmt::format("{}/{}/{}", dir_, kInstancesDir, instance);
}

Status SecretStore::Set(std::string_view name, std::string_view instance, std::string_view value) {
  EGRESSD_RETURN_IF_ERROR(CheckName(name));
  if (instance.empty() && name == kInstancesDir)
    return EGRESSD_ERROR(
        "secret name \"instances\" is taken by the per-instance secrets directory: choose another "
        "name");
  if (!instance.empty()) EGRESSD_RETURN_IF_ERROR(sandbox::CheckInstanceName(instance));
  if (value.size() > kMaxSecretBytes)
    return EGRESSD_ERROR("secret {}: the value is {} bytes, at most {} are allowed", name,
                         value.size(), kMaxSecretBytes);
  const std::string dir = DirOf(instance);
  if (!instance.empty()) {
    EGRESSD_RETURN_IF_ERROR(MakePrivateDir(dir_ + "/" + kInstancesDir));
    EGRESSD_RETURN_IF_ERROR(MakePrivateDir(dir));
  }
  EGRESSD_RETURN_IF_ERROR(WriteSecretFile(dir, std::string(name), value));
  EGRESSD_RETURN_IF_ERROR(Refresh());
  // Written, but a directory problem would keep it from being used: say so now.
  policy::SecretLookup now = Current()->Find(instance, name);
  if (!now.value)
    return EGRESSD_ERROR("secret {}{} was written but cannot be used: {}", name,
                         InstanceSuffix(instance), now.problem);
  spdlog::info("secrets: {}{} set", name, InstanceSuffix(instance));
  return {};
}

Status SecretStore::Remove(std::string_view name, std::string_view instance) {
  EGRESSD_RETURN_IF_ERROR(CheckName(name));
  if (!instance.empty()) EGRESSD_RETURN_IF_ERROR(sandbox::CheckInstanceName(instance));
  const std::string path = fmt::format("{}/{}", DirOf(instance), name);
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || S_ISDIR(st.st_mode) ||
      (instance.empty() && name == kInstancesDir))
    return EGRESSD_ERROR("secret {} is not set{}", name, InstanceSuffix(instance));
  if (unlink(path.c_str()) != 0)
    return EGRESSD_ERROR("cannot remove {}: {}", path, strerror(errno));
  if (!instance.empty()) rmdir(DirOf(instance).c_str());  // only if it was the last one
  spdlog::info("secrets: {}{} removed", name, InstanceSuffix(instance));
  return Refresh();
}

std::vector<SecretListing> SecretStore::List(std::string_view instance) const {
  std::shared_ptr<const SecretSnapshot> snapshot = Current();
  std::vector<SecretListing> out;
  auto add = [&](const Entries& entries, const std::string& owner) {
    for (const auto& [name, entry] : entries)
      out.push_back({.name = name,
                     .instance = owner,
                     .changed_sec = entry.changed_sec,
                     .usable = entry.value.has_value(),
                     .problem = entry.problem});
  };
  add(snapshot->shared, "");
  for (const auto& [owner, entries] : snapshot->instances)
    if (instance.empty() || owner == instance) add(entries, owner);
  return out;
}

std::vector<std::string> SecretStore::DirectoryProblems(std::string_view instance) const {
  std::shared_ptr<const SecretSnapshot> snapshot = Current();
  std::vector<std::string> out;
  if (!snapshot->shared_problem.empty()) out.push_back(snapshot->shared_problem);
  if (!snapshot->instances_problem.empty()) out.push_back(snapshot->instances_problem);
  for (const auto& [owner, problem] : snapshot->instance_problems)
    if (instance.empty() || owner == instance) out.push_back(problem);
  return out;
}

}  // namespace egressd::secrets
