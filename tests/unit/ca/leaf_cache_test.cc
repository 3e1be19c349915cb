#include "ca/leaf_cache.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "tests/unit/ca/ca_test_util.h"

namespace egressd::ca {
namespace {

std::shared_ptr<LeafCache> NewCache(size_t capacity = LeafCache::kDefaultCapacity) {
  auto ca = SandboxCa::Create("job");
  EXPECT_TRUE(ca.ok());
  auto cache = LeafCache::Create(*ca, capacity);
  EXPECT_TRUE(cache.ok()) << cache.status().ToString();
  return *cache;
}

TEST(LeafCache, SecondAskIsAHitWithTheSameCertificate) {
  auto cache = NewCache();
  auto a = cache->Get("example.com");
  auto b = cache->Get("example.com");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ(X509_cmp((*a)->cert(), (*b)->cert()), 0);
  EXPECT_EQ(cache->minted(), 1u);
  EXPECT_EQ(cache->hits(), 1u);
  EXPECT_EQ(testing::VerifyLeaf((*a)->cert(), cache->ca().cert(), "example.com", false), "");
}

TEST(LeafCache, KeyedByLowercaseName) {
  auto cache = NewCache();
  auto a = cache->Get("Example.COM");
  auto b = cache->Get("example.com");
  auto c = cache->Get("example.com.");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ(a->get(), c->get());
  EXPECT_EQ((*a)->name(), "example.com");
  EXPECT_EQ(cache->minted(), 1u);
}

TEST(LeafCache, BoundedLeastRecentlyUsedOut) {
  auto cache = NewCache(3);
  auto a = *cache->Get("a.example");
  cache->Get("b.example");
  cache->Get("c.example");
  cache->Get("a.example");  // a is now the most recent: b goes next
  cache->Get("d.example");
  EXPECT_EQ(cache->size(), 3u);
  EXPECT_EQ(cache->minted(), 4u);
  EXPECT_EQ(cache->Get("a.example")->get(), a.get());  // kept
  cache->Get("b.example");                             // minted again
  EXPECT_EQ(cache->minted(), 5u);
  for (int i = 0; i < 20; ++i) cache->Get("n" + std::to_string(i) + ".example");
  EXPECT_EQ(cache->size(), 3u);
  // An evicted leaf a connection still holds stays valid.
  EXPECT_EQ(testing::VerifyLeaf(a->cert(), cache->ca().cert(), "a.example", false), "");
}

TEST(LeafCache, ReMintedPastHalfItsValidity) {
  auto cache = NewCache();
  const time_t now = time(nullptr);
  auto first = *cache->Get("example.com", now);
  EXPECT_EQ(cache->Get("example.com", first->refresh_at() - 1)->get(), first.get());
  auto second = *cache->Get("example.com", first->refresh_at());
  EXPECT_NE(second.get(), first.get());
  EXPECT_EQ(cache->minted(), 2u);
  EXPECT_EQ(cache->size(), 1u);
}

TEST(LeafCache, BadNameIsAnErrorAndNothingIsCached) {
  auto cache = NewCache();
  EXPECT_FALSE(cache->Get("*.example.com").ok());
  EXPECT_FALSE(cache->Get("").ok());
  EXPECT_EQ(cache->size(), 0u);
  EXPECT_EQ(cache->minted(), 0u);
}

TEST(LeafCache, SharedByWorkerThreads) {
  auto cache = NewCache(8);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::string name = "h" + std::to_string((i * 7 + t) % 12) + ".example";
        auto leaf = cache->Get(name);
        if (!leaf.ok() || (*leaf)->name() != name) ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(cache->size(), 8u);
  EXPECT_EQ(cache->hits() + cache->minted(), 800u);
}

}  // namespace
}  // namespace egressd::ca
