#include "ca/leaf_cache.h"

namespace egressd::ca {

StatusOr<std::shared_ptr<LeafCache>> LeafCache::Create(std::shared_ptr<const SandboxCa> ca,
                                                       size_t capacity) {
  auto minter = LeafMinter::Create(std::move(ca));
  if (!minter.ok()) return minter.status();
  return std::make_shared<LeafCache>(std::move(*minter), capacity);
}

size_t LeafCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

StatusOr<std::shared_ptr<const Leaf>> LeafCache::Get(std::string_view requested, time_t now) {
  auto name = LeafMinter::CanonicalName(requested);
  if (!name.ok()) return name.status();
  {
    std::lock_guard lock(mu_);
    auto it = by_name_.find(*name);
    if (it != by_name_.end() && now < (*it->second)->refresh_at()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      hits_.fetch_add(1, std::memory_order_relaxed);
      return *it->second;
    }
  }
  auto leaf = minter_->Mint(*name, now);  // ~50 µs: not under the lock
  if (!leaf.ok()) return leaf.status();
  minted_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  auto it = by_name_.find(*name);
  if (it != by_name_.end()) {
    if (now < (*it->second)->refresh_at()) {  // another worker was quicker: one leaf per name
      lru_.splice(lru_.begin(), lru_, it->second);
      return *it->second;
    }
    lru_.erase(it->second);
    by_name_.erase(it);
  }
  lru_.push_front(*leaf);
  by_name_[*name] = lru_.begin();
  while (lru_.size() > capacity_) {
    by_name_.erase(lru_.back()->name());
    lru_.pop_back();
  }
  return *leaf;
}

}  // namespace egressd::ca
