#include "userspace/daemon/instance_lock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace egressd::daemon {
namespace {

class InstanceLockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/instance-lock-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(InstanceLockTest, FlockHolderNamesThePidHoldingTheLock) {
  UniqueFd held(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(held.valid());
  UniqueFd other(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  EXPECT_EQ(FlockHolder(other.get()), 0);  // nobody yet
  ASSERT_EQ(flock(held.get(), LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(FlockHolder(other.get()), getpid());
}

TEST_F(InstanceLockTest, ASecondLockOnTheSameStateDirIsRefusedNamingTheHolder) {
  InstanceLock first;
  ASSERT_TRUE(first.LockStateDir(dir_).ok());
  std::ifstream pid_file(dir_ + "/egressd.lock");
  std::string pid;
  pid_file >> pid;
  EXPECT_EQ(pid, std::to_string(getpid()));

  InstanceLock second;  // flock locks belong to open files: this one conflicts
  Status st = second.LockStateDir(dir_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("pid " + std::to_string(getpid())), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("--state-dir"), std::string::npos) << st.message();
}

TEST_F(InstanceLockTest, TheLockGoesWithItsHolder) {
  {
    InstanceLock first;
    ASSERT_TRUE(first.LockStateDir(dir_).ok());
  }
  InstanceLock second;
  EXPECT_TRUE(second.LockStateDir(dir_).ok());
}

TEST_F(InstanceLockTest, ADirectoryIsLockedThroughItsOwnDescriptor) {
  InstanceLock first;
  ASSERT_TRUE(first.LockBpffs(dir_).ok());
  InstanceLock second;
  Status st = second.LockBpffs(dir_);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--bpffs"), std::string::npos) << st.message();
  // Nothing was created in it (bpffs allows no regular files).
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(InstanceLockTest, ASocketNobodyAnswersOnIsUnused) {
  EXPECT_TRUE(CheckSocketUnused(dir_ + "/no.sock").ok());
}

}  // namespace
}  // namespace egressd::daemon
