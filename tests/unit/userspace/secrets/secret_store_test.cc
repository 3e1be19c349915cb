#include "userspace/secrets/secret_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace egressd::secrets {
namespace {

class SecretStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/secret-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);  // 0700, ours
    dir_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A file as another tool would write it (not through the store).
  void WriteFile(const std::string& rest, const std::string& text, mode_t mode = 0600) {
    const std::string path = dir_ + "/" + rest;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    {
      std::ofstream out(path, std::ios::trunc | std::ios::binary);
      out << text;
    }
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }
  static mode_t Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
  static std::optional<std::string> Value(const SecretStore& store, std::string_view instance,
                                          std::string_view name) {
    return store.Current()->Find(instance, name).value;
  }
  static std::string Problem(const SecretStore& store, std::string_view instance,
                             std::string_view name) {
    return store.Current()->Find(instance, name).problem;
  }

  std::string dir_;
};

TEST_F(SecretStoreTest, InstanceSecretWinsOverTheSharedOne) {
  WriteFile("token", "shared-value\n");
  WriteFile("other", "other-shared\n");
  WriteFile("instances/job-1/token", "job-1-value\n");
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "job-1", "token"), "job-1-value");
  EXPECT_EQ(Value(store, "job-2", "token"), "shared-value");
  EXPECT_EQ(Value(store, "", "token"), "shared-value");
  EXPECT_EQ(Value(store, "job-1", "other"), "other-shared");  // falls back to shared
  EXPECT_EQ(Value(store, "job-1", "absent"), std::nullopt);
  EXPECT_EQ(Problem(store, "job-1", "absent"), "not set");
  // Through the interface the data path uses.
  InstanceSecrets job1 = store.ForInstance("job-1");
  const policy::SecretSource& source = job1;
  EXPECT_EQ(source.Find("token").value, "job-1-value");
}

TEST_F(SecretStoreTest, OneTrailingNewlineIsStripped) {
  WriteFile("plain", "tok");
  WriteFile("newline", "tok\n");
  WriteFile("two", "tok\n\n");
  WriteFile("crlf", "tok\r\n");
  WriteFile("empty", "");
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "plain"), "tok");
  EXPECT_EQ(Value(store, "", "newline"), "tok");
  EXPECT_EQ(Value(store, "", "two"), "tok\n");
  EXPECT_EQ(Value(store, "", "crlf"), "tok\r");  // only "\n"; the handler refuses a CR
  EXPECT_EQ(Value(store, "", "empty"), "");
}

TEST_F(SecretStoreTest, AFileReadableByOthersIsRefusedWithTheChmodHint) {
  WriteFile("token", "secret-value\n", 0644);
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), std::nullopt);
  std::string problem = Problem(store, "", "token");
  EXPECT_NE(problem.find(dir_ + "/token is readable by group or others (mode 0644): chmod 600 it"),
            std::string::npos)
      << problem;
  EXPECT_EQ(problem.find("secret-value"), std::string::npos);
  EXPECT_EQ(store.counters().unusable.load(), 1u);
  // Fixed: used from the next refresh on.
  ASSERT_EQ(chmod((dir_ + "/token").c_str(), 0600), 0);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), "secret-value");
  // Group-writable only is refused too.
  ASSERT_EQ(chmod((dir_ + "/token").c_str(), 0620), 0);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), std::nullopt);
  EXPECT_NE(Problem(store, "", "token").find("chmod 600"), std::string::npos);
}

TEST_F(SecretStoreTest, AFileOwnedByAnotherUserIsRefused) {
  WriteFile("token", "v\n");
  ASSERT_EQ(chown((dir_ + "/token").c_str(), 4321, 4321), 0);
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), std::nullopt);
  EXPECT_NE(Problem(store, "", "token").find("owned by uid 4321"), std::string::npos);
}

TEST_F(SecretStoreTest, ASymbolicLinkIsRefused) {
  char outside[] = "/tmp/secret-store-outside-XXXXXX";
  int fd = mkstemp(outside);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "linked\n", 7), 7);
  close(fd);
  ASSERT_EQ(symlink(outside, (dir_ + "/token").c_str()), 0);
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), std::nullopt);
  EXPECT_NE(Problem(store, "", "token").find("symbolic link"), std::string::npos);
  unlink(outside);
}

TEST_F(SecretStoreTest, ASymlinkedInstanceDirectoryIsRefusedAndBlocksTheSharedFallback) {
  WriteFile("token", "shared\n");
  char outside[] = "/tmp/secret-store-outside-XXXXXX";
  ASSERT_NE(mkdtemp(outside), nullptr);
  ASSERT_EQ(mkdir((dir_ + "/instances").c_str(), 0700), 0);
  ASSERT_EQ(symlink(outside, (dir_ + "/instances/job").c_str()), 0);
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "job", "token"), std::nullopt);
  EXPECT_NE(Problem(store, "job", "token").find("symbolic link"), std::string::npos);
  EXPECT_EQ(Value(store, "other-job", "token"), "shared");
  std::filesystem::remove_all(outside);
}

TEST_F(SecretStoreTest, ADirectoryWritableByOthersMakesEverySecretUnusable) {
  WriteFile("token", "v\n");
  WriteFile("instances/job/own", "w\n");
  ASSERT_EQ(chmod(dir_.c_str(), 0777), 0);
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), std::nullopt);
  EXPECT_EQ(Value(store, "job", "own"), std::nullopt);
  EXPECT_NE(Problem(store, "job", "own").find("writable by group or others (mode 0777)"),
            std::string::npos);
  auto problems = store.DirectoryProblems("");
  ASSERT_EQ(problems.size(), 1u);
  // Listed (so the operator sees them), never usable.
  auto rows = store.List("");
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) EXPECT_FALSE(row.usable);

  ASSERT_EQ(chmod(dir_.c_str(), 0700), 0);
  ASSERT_EQ(chmod((dir_ + "/instances").c_str(), 0770), 0);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), "v");
  EXPECT_EQ(Value(store, "job", "own"), std::nullopt);
  EXPECT_EQ(Value(store, "job", "token"), std::nullopt);  // no fallback for an instance
  ASSERT_EQ(chmod((dir_ + "/instances").c_str(), 0700), 0);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "job", "own"), "w");
}

TEST_F(SecretStoreTest, SizeLimit) {
  const std::string biggest(kMaxSecretBytes, 'a');
  WriteFile("biggest", biggest + "\n");
  WriteFile("too-big", biggest + "b");
  WriteFile("too-big-with-newline", biggest + "b\n");
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "biggest"), biggest);
  EXPECT_EQ(Value(store, "", "too-big"), std::nullopt);
  EXPECT_NE(Problem(store, "", "too-big").find("too large"), std::string::npos);
  EXPECT_EQ(Value(store, "", "too-big-with-newline"), std::nullopt);

  EXPECT_TRUE(store.Set("set-biggest", "", biggest).ok());
  EXPECT_EQ(Value(store, "", "set-biggest"), biggest);
  Status refused = store.Set("set-too-big", "", biggest + "b");
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.message().find("aaaa"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/set-too-big"));
}

TEST_F(SecretStoreTest, RefreshPicksUpAChangeByAnotherWriter) {
  WriteFile("token", "first\n");
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), "first");
  const uint64_t generation = store.Current()->generation;
  // Nothing changed: nothing published (a file changed within the last
  // second is read again, as the next write may leave the same mtime).
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(store.Current()->generation, generation);
  // Same size, rewritten in place at once (likely within one clock tick).
  WriteFile("token", "secnd\n");
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), "secnd");
  EXPECT_GT(store.Current()->generation, generation);
  // Removed by another tool.
  ASSERT_EQ(unlink((dir_ + "/token").c_str()), 0);
  ASSERT_TRUE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), std::nullopt);
}

TEST_F(SecretStoreTest, TheBackgroundThreadPicksUpAChangeWithinASecond) {
  WriteFile("token", "first\n");
  SecretStore store(dir_);
  ASSERT_TRUE(store.Start(std::chrono::milliseconds(100)).ok());
  EXPECT_EQ(Value(store, "", "token"), "first");  // read by Start
  WriteFile("instances/job/token", "rotated\n");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (Value(store, "job", "token") != "rotated" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(Value(store, "job", "token"), "rotated");
  auto before_stop = std::chrono::steady_clock::now();
  store.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before_stop, std::chrono::milliseconds(500));
}

TEST_F(SecretStoreTest, StopIsPromptWhateverTheInterval) {
  SecretStore store(dir_);
  ASSERT_TRUE(store.Start(std::chrono::seconds(30)).ok());
  auto before_stop = std::chrono::steady_clock::now();
  store.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before_stop, std::chrono::milliseconds(500));
}

TEST_F(SecretStoreTest, StartCreatesAMissingDirectoryRootOnly) {
  const std::string nested = dir_ + "/etc/egressd/secrets";
  SecretStore store(nested);
  const mode_t old_umask = umask(0);
  Status started = store.Start();
  umask(old_umask);
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_EQ(Mode(nested), 0700u);
  EXPECT_TRUE(store.DirectoryProblems("").empty());
}

TEST_F(SecretStoreTest, SetWritesRootOnlyFilesAndIsUsedAtOnce) {
  SecretStore store(dir_);
  ASSERT_TRUE(store.Refresh().ok());
  const mode_t old_umask = umask(0);
  Status shared = store.Set("token", "", "shared-value");
  Status own = store.Set("token", "job-7", "own-value\n");
  umask(old_umask);
  ASSERT_TRUE(shared.ok()) << shared.ToString();
  ASSERT_TRUE(own.ok()) << own.ToString();
  // No Refresh in between: Set published it.
  EXPECT_EQ(Value(store, "", "token"), "shared-value");
  EXPECT_EQ(Value(store, "job-7", "token"), "own-value\n");  // what was given, exactly
  EXPECT_EQ(Mode(dir_ + "/token"), 0600u);
  EXPECT_EQ(Mode(dir_ + "/instances"), 0700u);
  EXPECT_EQ(Mode(dir_ + "/instances/job-7"), 0700u);
  EXPECT_EQ(Mode(dir_ + "/instances/job-7/token"), 0600u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/token#set"));

  ASSERT_TRUE(store.Remove("token", "job-7").ok());
  EXPECT_EQ(Value(store, "job-7", "token"), "shared-value");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/instances/job-7"));  // emptied: removed
  Status again = store.Remove("token", "job-7");
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(again.message(), "secret token is not set for instance \"job-7\"");
  ASSERT_TRUE(store.Remove("token", "").ok());
  EXPECT_EQ(Value(store, "", "token"), std::nullopt);
}

TEST_F(SecretStoreTest, NamesAndInstancesAreChecked) {
  SecretStore store(dir_);
  for (const char* bad : {"", ".", "..", "a/b", "a b", "tok\n", "x#set", "ü"})
    EXPECT_FALSE(store.Set(bad, "", "v").ok()) << bad;
  EXPECT_FALSE(store.Set(std::string(129, 'a'), "", "v").ok());
  EXPECT_TRUE(store.Set(std::string(128, 'a'), "", "v").ok());
  EXPECT_TRUE(store.Set("A-z_0.9", "", "v").ok());
  EXPECT_FALSE(store.Set("instances", "", "v").ok());  // the per-instance directory
  EXPECT_TRUE(store.Set("instances", "job", "v").ok());
  EXPECT_FALSE(store.Set("token", "../escape", "v").ok());
  EXPECT_FALSE(store.Set("token", "..", "v").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/escape"));
  EXPECT_TRUE(CheckName("GITHUB_TOKEN").ok());
  EXPECT_FALSE(CheckName("a:b").ok());
}

TEST_F(SecretStoreTest, ListGivesNamesScopesAndProblemsNeverValues) {
  SecretStore store(dir_);
  ASSERT_TRUE(store.Set("token", "", "value-shared").ok());
  ASSERT_TRUE(store.Set("token", "job", "value-job").ok());
  WriteFile("loose", "value-loose\n", 0644);
  ASSERT_TRUE(store.Refresh().ok());

  auto rows = store.List("");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].name, "loose");
  EXPECT_FALSE(rows[0].usable);
  EXPECT_NE(rows[0].problem.find("chmod 600"), std::string::npos);
  EXPECT_EQ(rows[1].name, "token");
  EXPECT_EQ(rows[1].instance, "");
  EXPECT_TRUE(rows[1].usable);
  EXPECT_EQ(rows[2].instance, "job");
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  EXPECT_LE(std::abs(rows[2].changed_sec - now), 5);
  for (const auto& row : rows) {
    for (const std::string& text : {row.name, row.instance, row.problem})
      EXPECT_EQ(text.find("value-"), std::string::npos) << text;
  }
  EXPECT_EQ(store.List("other-job").size(), 2u);  // the shared ones
  EXPECT_EQ(store.List("job").size(), 3u);
}

TEST_F(SecretStoreTest, AnOldSnapshotKeepsItsValues) {
  SecretStore store(dir_);
  ASSERT_TRUE(store.Set("token", "", "old").ok());
  std::shared_ptr<const SecretSnapshot> before = store.Current();
  InstanceSecrets held = store.ForInstance("job");
  ASSERT_TRUE(store.Set("token", "", "new").ok());
  ASSERT_TRUE(store.Remove("token", "").ok());
  ASSERT_TRUE(store.Set("token", "", "newest").ok());
  EXPECT_EQ(before->Find("", "token").value, "old");
  EXPECT_EQ(held.Find("token").value, "old");
  EXPECT_EQ(Value(store, "job", "token"), "newest");
}

TEST_F(SecretStoreTest, AMissingDirectoryIsAProblemNotACrash) {
  SecretStore store(dir_ + "/absent");
  EXPECT_FALSE(store.Refresh().ok());
  EXPECT_EQ(Value(store, "", "token"), std::nullopt);
  EXPECT_NE(Problem(store, "", "token").find("cannot open the secrets dir"), std::string::npos);
  EXPECT_FALSE(store.Set("token", "", "v").ok());
}

}  // namespace
}  // namespace egressd::secrets
