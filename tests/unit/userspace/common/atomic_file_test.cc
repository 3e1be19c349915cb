#include "userspace/common/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace egressd {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(WriteFileAtomically, ReplacesTheFileRootOnlyWhateverTheUmaskAndTheOldTmp) {
  char dir[] = "/tmp/atomic-file-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/state.json";
  // A leftover PATH.tmp readable by all, and a permissive umask.
  std::ofstream(path + ".tmp") << "stale";
  ASSERT_EQ(chmod((path + ".tmp").c_str(), 0644), 0);
  const mode_t old_umask = umask(0);
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  umask(old_umask);
  EXPECT_EQ(Read(path), "second");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0);  // renamed away
  std::remove(path.c_str());
  rmdir(dir);
}

TEST(WriteFileAtomically, AnUnwritableDirectoryIsAnErrorNamingTheFile) {
  auto status = WriteFileAtomically("/nonexistent-dir/state.json", "x");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/nonexistent-dir/state.json.tmp"), std::string::npos);
}

}  // namespace
}  // namespace egressd
