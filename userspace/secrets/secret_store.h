// The secrets handlers put into requests: one file per secret in the secrets
// dir (`<dir>/NAME` for every instance, `<dir>/instances/<INSTANCE>/NAME`
// for one, which wins). The store re-reads the dir (a background thread, and
// at once after Set/Remove) and publishes immutable snapshots; the data path
// only ever reads a snapshot, never a file. Values are never logged.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "policy/handler_eval.h"
#include "userspace/common/status.h"

namespace egressd::secrets {

// At most 64 KiB, as hosted platforms allow.
inline constexpr size_t kMaxSecretBytes = 64 * 1024;

// One secret file as read. `value` is set when the file is usable;
// otherwise `problem` says why not (for operators: names the path and the
// fix, never the value).
struct SecretEntry {
  std::optional<std::string> value;
  std::string problem;
  int64_t changed_sec = 0;  // the file's mtime (epoch seconds)
  // Its directory's problem when it was read ("" none): the file was not read.
  std::string directory_problem;
  // What the file was when read: an unchanged identity is not read again.
  struct Identity {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    mode_t mode = 0;
    uid_t uid = 0;
    bool operator==(const Identity&) const = default;
  } identity;
  int64_t read_at_ns = 0;  // CLOCK_REALTIME when it was read
};

// Every secret at one moment. Never changed once published.
struct SecretSnapshot {
  std::map<std::string, SecretEntry, std::less<>> shared;
  std::map<std::string, std::map<std::string, SecretEntry, std::less<>>, std::less<>> instances;
  // A problem with a directory (the secrets dir, instances/ or one
  // instance's): no secret it holds is used, and an instance whose dir has a
  // problem gets no secret at all (not the shared ones either: fail closed).
  std::string shared_problem;     // the secrets dir: applies to everything
  std::string instances_problem;  // instances/: applies to every instance
  std::map<std::string, std::string, std::less<>> instance_problems;
  uint64_t generation = 0;  // bumped when anything changed

  // The instance's own secret, else the shared one; a missing one has
  // problem "secret NAME is not set (...)".
  policy::SecretLookup Find(std::string_view instance, std::string_view name) const;
};

// The secrets one instance's handlers see (its own first, then the shared
// ones), over one snapshot: what the proxy hands to policy::EvaluateHandler.
class InstanceSecrets : public policy::SecretSource {
 public:
  InstanceSecrets(std::shared_ptr<const SecretSnapshot> snapshot, std::string instance)
      : snapshot_(std::move(snapshot)), instance_(std::move(instance)) {}
  policy::SecretLookup Find(std::string_view name) const override;

 private:
  std::shared_ptr<const SecretSnapshot> snapshot_;
  std::string instance_;
};

class SecretStore;

// InstanceSecrets whose snapshot is taken at the first lookup: a request no
// handler adds a credential to costs nothing. Lives for one request.
class LazyInstanceSecrets : public policy::SecretSource {
 public:
  LazyInstanceSecrets(const SecretStore& store, std::string_view instance)
      : store_(store), instance_(instance) {}
  policy::SecretLookup Find(std::string_view name) const override;

 private:
  const SecretStore& store_;
  std::string_view instance_;
  mutable std::optional<InstanceSecrets> secrets_;
};

// A row of `secret list`: never a value.
struct SecretListing {
  std::string name;
  std::string instance;  // "" = shared
  int64_t changed_sec = 0;
  bool usable = false;
  std::string problem;
};

struct SecretCounters {
  std::atomic<uint64_t> refreshes{0};   // snapshots published
  std::atomic<uint64_t> file_reads{0};  // secret files (re-)read
  std::atomic<uint64_t> unusable{0};    // files found unusable (once per change)
};

// policy::IsValidSecretName as an error naming the field ("secret name
// \"a/b\": ...").
Status CheckName(std::string_view name);

class SecretStore {
 public:
  // `dir` need not be read yet: call Refresh() (or Start()).
  explicit SecretStore(std::string dir);
  ~SecretStore();
  SecretStore(const SecretStore&) = delete;
  SecretStore& operator=(const SecretStore&) = delete;

  // Creates the dir (0700) if missing, reads it once, and starts the thread
  // that re-reads it every `interval`. An error: the dir is unusable.
  Status Start(std::chrono::milliseconds interval = std::chrono::milliseconds(300));
  // Stops the thread promptly (idempotent).
  void Stop();

  // Re-reads the dir; publishes a new snapshot if anything changed (files
  // whose identity is unchanged are not read again). Errors are per secret
  // (in the snapshot); this returns an error only if the dir cannot be read.
  Status Refresh();

  // The current snapshot (never null). Cheap: a pointer copy.
  std::shared_ptr<const SecretSnapshot> Current() const;
  InstanceSecrets ForInstance(std::string instance) const {
    return InstanceSecrets(Current(), std::move(instance));
  }

  // Writes the secret atomically (0600; creates instances/<INSTANCE>/ 0700)
  // and refreshes before returning, so the next request uses it.
  Status Set(std::string_view name, std::string_view instance, std::string_view value);
  // Error if there is no such secret.
  Status Remove(std::string_view name, std::string_view instance);
  // `instance` "": the shared secrets and every instance's; else the shared
  // ones and that instance's. Sorted by instance then name.
  std::vector<SecretListing> List(std::string_view instance) const;
  // The directory problems that `List(instance)` concerns (none: empty).
  std::vector<std::string> DirectoryProblems(std::string_view instance) const;

  const std::string& dir() const { return dir_; }
  const SecretCounters& counters() const { return counters_; }

 private:
  std::string DirOf(std::string_view instance) const;
  void Publish(std::shared_ptr<const SecretSnapshot> next);
  // Reads instances/ (open as `instances_fd`) into `next`.
  void ReadInstances(int instances_fd, const std::string& instances_path, const SecretSnapshot& old,
                     SecretSnapshot* next);

  const std::string dir_;
  mutable std::mutex snapshot_mu_;  // guards snapshot_ (the pointer only)
  std::shared_ptr<const SecretSnapshot> snapshot_;
  std::mutex refresh_mu_;  // one Refresh at a time (the thread, Set, Remove)
  std::shared_ptr<const SecretSnapshot> last_read_;  // refresh_mu_
  SecretCounters counters_;

  std::thread thread_;
  std::mutex thread_mu_;
  std::condition_variable thread_cv_;
  bool stop_ = false;
};

}  // namespace egressd::secrets
