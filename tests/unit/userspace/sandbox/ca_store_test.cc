#include "userspace/sandbox/ca_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace egressd::sandbox {
namespace {

class CaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/ca-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    state_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(state_); }

  std::string Path(const std::string& rest) const { return state_ + "/ca/" + rest; }
  static mode_t Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::string state_;
};

TEST_F(CaStoreTest, CreateSavesKeyRootOnlyAndLoadGivesTheSameCa) {
  CaStore store(state_);
  const mode_t old_umask = umask(0);
  auto created = store.Create("job-42");
  umask(old_umask);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(Mode(state_ + "/ca"), 0700u);
  EXPECT_EQ(Mode(Path("job-42")), 0700u);
  EXPECT_EQ(Mode(Path("job-42/ca.key")), 0600u);
  EXPECT_EQ(Mode(Path("job-42/ca.crt")), 0644u);
  EXPECT_EQ(Read(Path("job-42/ca.crt")), (*created)->ca().cert_pem());
  EXPECT_NE(Read(Path("job-42/ca.key")).find("PRIVATE KEY"), std::string::npos);

  auto loaded = store.Load("job-42");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->ca().cert_pem(), (*created)->ca().cert_pem());
  EXPECT_EQ(EVP_PKEY_eq((*loaded)->ca().key(), (*created)->ca().key()), 1);
}

TEST_F(CaStoreTest, CreateReplacesALeftoverAndEachCaIsNew) {
  CaStore store(state_);
  auto first = store.Create("job");
  auto second = store.Create("job");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE((*first)->ca().cert_pem(), (*second)->ca().cert_pem());
  EXPECT_EQ(Read(Path("job/ca.crt")), (*second)->ca().cert_pem());
}

TEST_F(CaStoreTest, LoadWithNothingSavedCreatesOne) {
  CaStore store(state_);
  auto loaded = store.Load("older");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(Read(Path("older/ca.crt")), (*loaded)->ca().cert_pem());
}

TEST_F(CaStoreTest, DamagedFilesAreAnErrorAndLeftAlone) {
  CaStore store(state_);
  ASSERT_TRUE(store.Create("job").ok());
  std::ofstream(Path("job/ca.key")) << "garbage";
  auto loaded = store.Load("job");
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("not an unencrypted PEM private key"), std::string::npos)
      << loaded.status().message();
  EXPECT_EQ(Read(Path("job/ca.key")), "garbage");
  // Half there: an error too.
  ASSERT_TRUE(store.Create("half").ok());
  unlink(Path("half/ca.crt").c_str());
  EXPECT_FALSE(store.Load("half").ok());
}

TEST_F(CaStoreTest, RemoveWipesTheFilesAndTheDirectory) {
  CaStore store(state_);
  ASSERT_TRUE(store.Create("job").ok());
  store.Remove("job");
  EXPECT_FALSE(std::filesystem::exists(Path("job")));
  store.Remove("job");  // nothing left: fine
  store.Remove("never");
}

TEST_F(CaStoreTest, RenameMovesTheSameCa) {
  CaStore store(state_);
  auto created = store.Create("old");
  ASSERT_TRUE(created.ok());
  store.Rename("old", "new");
  EXPECT_FALSE(std::filesystem::exists(Path("old")));
  auto loaded = store.Load("new");
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)->ca().cert_pem(), (*created)->ca().cert_pem());
}

TEST_F(CaStoreTest, PruneRemovesTheCasNoSandboxUses) {
  CaStore store(state_);
  ASSERT_TRUE(store.Create("kept").ok());
  ASSERT_TRUE(store.Create("stale").ok());
  EXPECT_EQ(store.Prune({"kept"}), 1u);
  EXPECT_TRUE(std::filesystem::exists(Path("kept/ca.key")));
  EXPECT_FALSE(std::filesystem::exists(Path("stale")));
}

TEST_F(CaStoreTest, NamesThatAreNotOnePathComponentAreRefused) {
  CaStore store(state_);
  for (const char* name : {"..", ".", "../escape", "a/b", ""}) {
    EXPECT_FALSE(store.Create(name).ok()) << name;
    EXPECT_FALSE(store.Load(name).ok()) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(state_ + "/escape"));
}

}  // namespace
}  // namespace egressd::sandbox
