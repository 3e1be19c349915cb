// Where the sandboxes' CAs are kept between daemon runs: the only code that
// reads or writes their files. A CA is created at attach, loaded back when a
// restarted daemon re-adopts its sandbox (a sandbox that installed it keeps
// trusting it), and wiped at detach.
//
//   <state-dir>/ca/              0700
//   <state-dir>/ca/<instance>/   0700
//       ca.key                   0600  the private key (PKCS#8 PEM), root's only
//       ca.crt                   0644  the certificate (PEM), as `egressctl ca` prints it
//
// Files are written with WriteFileAtomically. Every path is built from an
// instance name checked by CheckInstanceName first. Called by the registry
// (control plane) only: no key is generated or read on a proxy worker.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "ca/leaf_cache.h"
#include "userspace/common/status.h"

namespace egressd::sandbox {

class CaStore {
 public:
  explicit CaStore(const std::string& state_dir) : dir_(state_dir + "/ca") {}

  // A new CA for a new sandbox, saved (replacing what a crash may have left
  // under that name), with its leaf cache.
  StatusOr<std::shared_ptr<ca::LeafCache>> Create(const std::string& instance) const;
  // The instance's saved CA. None saved (a sandbox attached by a daemon that
  // predates CAs): a new one. Unreadable or half there: an error, the files
  // are left for the operator to look at.
  StatusOr<std::shared_ptr<ca::LeafCache>> Load(const std::string& instance) const;
  // Its files removed (detach); nothing saved is fine. A failure is logged:
  // the sandbox goes anyway.
  void Remove(const std::string& instance) const;
  // A switch that renamed the instance: its CA goes with it (a failure is
  // logged; a restart would then give the sandbox a new CA).
  void Rename(const std::string& from, const std::string& to) const;
  // Removes the CAs of instances not in `keep` (a crash between saving a CA
  // and saving state.json). Returns how many.
  size_t Prune(const std::set<std::string>& keep) const;

 private:
  StatusOr<std::string> InstanceDir(const std::string& instance) const;
  Status MakeDir(const std::string& path) const;
  Status RemoveFiles(const std::string& instance) const;

  std::string dir_;
};

}  // namespace egressd::sandbox
