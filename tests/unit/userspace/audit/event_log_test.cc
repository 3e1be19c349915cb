#include "userspace/audit/event_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace egressd::audit {
namespace {

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/event-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/audit.jsonl";
  }
  void TearDown() override {
    std::remove(path_.c_str());
    std::remove((path_ + ".1").c_str());
    rmdir(dir_.c_str());
  }
  static AuditEvent Event(const std::string& instance, int64_t time_ms) {
    AuditEvent e;
    e.instance = instance;
    e.layer = "kernel";
    e.reason = "test";
    e.time_ms = time_ms;
    return e;
  }
  size_t FileLines() const {
    std::ifstream in(path_);
    size_t n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }
  std::string dir_, path_;
};

TEST_F(EventLogTest, AFloodIsCutAndAnnouncedWithoutTouchingOthers) {
  EventLog log(path_, 1000, 1 << 20, /*per_instance_per_second=*/3);
  for (int i = 0; i < 10; ++i) log.Append(Event("noisy", 5000 + i));
  log.Append(Event("quiet", 5500));
  EXPECT_EQ(log.suppressed(), 7u);
  EXPECT_EQ(log.Since(0, "noisy", 100).size(), 3u);
  EXPECT_EQ(log.Since(0, "quiet", 100).size(), 1u);

  // The next second: a notice first, then the event.
  log.Append(Event("noisy", 6001));
  auto noisy = log.Since(0, "noisy", 100);
  ASSERT_EQ(noisy.size(), 5u);
  EXPECT_EQ(noisy[3].layer, "audit");
  EXPECT_EQ(noisy[3].reason, "7 events of this instance were left out (over 3 in one second)");
  EXPECT_EQ(noisy[4].layer, "kernel");
  EXPECT_EQ(FileLines(), 6u);
  EXPECT_EQ(log.appended(), 6u);
}

TEST_F(EventLogTest, UnderTheLimitNothingIsLeftOut) {
  EventLog log(path_, 1000, 1 << 20, 3);
  for (int s = 0; s < 5; ++s)
    for (int i = 0; i < 3; ++i) log.Append(Event("steady", s * 1000 + i));
  EXPECT_EQ(log.suppressed(), 0u);
  EXPECT_EQ(log.Since(0, "", 100).size(), 15u);
}

TEST_F(EventLogTest, AFailedRotationKeepsTheCurrentFileAndCountsIt) {
  // A non-empty directory where the old file should go: rename fails.
  const std::string blocker = path_ + ".1";
  ASSERT_EQ(mkdir(blocker.c_str(), 0700), 0);
  const std::string inside = blocker + "/keep";
  std::ofstream(inside) << "x";
  {
    EventLog log(path_, 100, /*max_file_bytes=*/4096);
    for (int i = 0; i < 100; ++i) log.Append(Event("rot", 1000 + i));
    EXPECT_GT(log.write_errors(), 0u);
  }
  // Nothing was truncated away: every line is still in the one file.
  EXPECT_EQ(FileLines(), 100u);
  std::remove(inside.c_str());
  rmdir(blocker.c_str());
}

}  // namespace
}  // namespace egressd::audit
