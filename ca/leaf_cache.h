// The leaves of one sandbox, minted on first use and kept (bounded, least
// recently used out): what the proxy asks for the name (SNI) of a connection
// it intercepts. Several proxy workers share a sandbox: thread-safe, and a
// mint happens outside the lock (two workers missing the same name at once
// may both mint; the first stored wins).
//
// The proxy gets it from its SandboxView (`view->leaves`), built by the
// control plane, so no key is generated or loaded on a worker thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ca/leaf_minter.h"
#include "ca/sandbox_ca.h"
#include "userspace/common/status.h"

namespace egressd::ca {

class LeafCache {
 public:
  static constexpr size_t kDefaultCapacity = 1024;

  explicit LeafCache(std::shared_ptr<const LeafMinter> minter, size_t capacity = kDefaultCapacity)
      : minter_(std::move(minter)), capacity_(capacity == 0 ? 1 : capacity) {}

  // A CA's minter and cache in one call (generates the leaf key).
  static StatusOr<std::shared_ptr<LeafCache>> Create(std::shared_ptr<const SandboxCa> ca,
                                                     size_t capacity = kDefaultCapacity);

  // The leaf for `name` (case-insensitive; see LeafMinter::CanonicalName):
  // the cached one while it is within the first half of its validity, else a
  // new one. Hand leaf->cert() and leaf->key() to OpenSSL.
  StatusOr<std::shared_ptr<const Leaf>> Get(std::string_view name, time_t now = time(nullptr));

  const SandboxCa& ca() const { return minter_->ca(); }
  size_t size() const;
  uint64_t minted() const { return minted_.load(std::memory_order_relaxed); }
  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }

 private:
  using Entry = std::shared_ptr<const Leaf>;

  std::shared_ptr<const LeafMinter> minter_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_name_;
  std::atomic<uint64_t> minted_{0};
  std::atomic<uint64_t> hits_{0};
};

}  // namespace egressd::ca
