#include "userspace/sandbox/ended_instances.h"

#include <gtest/gtest.h>

namespace egressd::sandbox {
namespace {

EndedInstance Ended(uint32_t id, const std::string& instance) {
  EndedInstance e;
  e.sandbox_id = id;
  e.instance = instance;
  e.cgroup = "/sys/fs/cgroup/egressd/" + instance;
  e.policy = "strict";
  return e;
}

TEST(EndedInstancesTest, FindsByIdNameAndCgroup) {
  EndedInstances ended;
  EndedInstance e = Ended(7, "job-1");
  e.kernel.connect_denied = 3;
  auto proxy = std::make_shared<ProxyCounters>();
  proxy->requests_denied = 2;
  e.proxy = proxy;
  ended.Add(e);
  auto by_id = ended.ById(7);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->instance, "job-1");
  EXPECT_EQ(by_id->kernel.connect_denied, 3u);
  EXPECT_EQ(by_id->proxy->requests_denied.load(), 2u);
  EXPECT_GT(by_id->ended_ms, 0);
  EXPECT_TRUE(ended.ByName("job-1"));
  EXPECT_TRUE(ended.ByName("/sys/fs/cgroup/egressd/job-1"));
  EXPECT_FALSE(ended.ById(8));
  EXPECT_FALSE(ended.ByName("job-2"));
}

TEST(EndedInstancesTest, ProxyCountersAreNeverNull) {
  EndedInstances ended;
  ended.Add(Ended(1, "a"));
  ASSERT_TRUE(ended.ById(1));
  ASSERT_NE(ended.ById(1)->proxy, nullptr);
  EXPECT_EQ(ended.ById(1)->proxy->connections.load(), 0u);
}

TEST(EndedInstancesTest, TheMostRecentWinsForAReusedIdOrName) {
  EndedInstances ended;
  ended.Add(Ended(3, "first"));
  ended.Add(Ended(3, "second"));
  EXPECT_EQ(ended.ById(3)->instance, "second");
  EndedInstance again = Ended(4, "first");
  again.policy = "open";
  ended.Add(again);
  EXPECT_EQ(ended.ByName("first")->policy, "open");
}

TEST(EndedInstancesTest, KeepsTheLast64) {
  EndedInstances ended;
  for (uint32_t i = 1; i <= EndedInstances::kKept + 10; ++i)
    ended.Add(Ended(i, "run-" + std::to_string(i)));
  for (uint32_t i = 1; i <= 10; ++i) EXPECT_FALSE(ended.ById(i)) << i;
  for (uint32_t i = 11; i <= EndedInstances::kKept + 10; ++i) EXPECT_TRUE(ended.ById(i)) << i;
  EXPECT_FALSE(ended.ByName("run-10"));
  EXPECT_TRUE(ended.ByName("run-11"));
}

}  // namespace
}  // namespace egressd::sandbox
