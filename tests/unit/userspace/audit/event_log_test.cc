#include "userspace/audit/event_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

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
  std::vector<uint64_t> FileSeqs() const {
    std::ifstream in(path_);
    std::vector<uint64_t> seqs;
    for (std::string line; std::getline(in, line);)
      seqs.push_back(nlohmann::json::parse(line)["seq"].get<uint64_t>());
    return seqs;
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
  log.Flush();
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
    log.Flush();  // the writer thread has tried every line
    EXPECT_GT(log.write_errors(), 0u);
  }
  // Nothing was truncated away: every line is still in the one file.
  EXPECT_EQ(FileLines(), 100u);
  std::remove(inside.c_str());
  rmdir(blocker.c_str());
}

TEST_F(EventLogTest, LinesFromManyThreadsReachTheFileInSeqOrderByFlush) {
  EventLog log(path_, 100000, 1 << 30, /*per_instance_per_second=*/1000000);
  constexpr int kThreads = 4, kEach = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&log, t] {
      for (int i = 0; i < kEach; ++i) log.Append(Event("t" + std::to_string(t), 0));
    });
  for (auto& t : threads) t.join();
  log.Flush();  // everything appended before it is in the file now
  EXPECT_EQ(log.pending(), 0u);
  std::vector<uint64_t> seqs = FileSeqs();
  ASSERT_EQ(seqs.size(), size_t{kThreads * kEach});
  for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], i + 1);
  EXPECT_EQ(log.dropped(), 0u);
  EXPECT_EQ(log.write_errors(), 0u);
}

TEST_F(EventLogTest, AStuckFileNeverBlocksAppendAndDropsAreCounted) {
  // The "file" is a pipe nobody reads (its buffer made one page): the writer
  // blocks in write() after a few lines, as it would on a hung disk.
  ASSERT_EQ(mkfifo(path_.c_str(), 0600), 0);
  int reader = open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  ASSERT_GT(fcntl(reader, F_SETPIPE_SZ, 4096), 0);
  constexpr int kEvents = 200;
  std::string received;
  {
    EventLog log(path_, 1000, 1 << 30, /*per_instance_per_second=*/1000000,
                 /*max_queued_lines=*/4);
    auto appending = std::async(std::launch::async, [&] {
      for (int i = 0; i < kEvents; ++i) {
        AuditEvent e = Event("stuck", 0);
        e.reason = std::string(1000, 'x');  // ~1 KiB a line: four fill the pipe
        log.Append(std::move(e));
      }
    });
    // Append returns although the writer is stuck.
    ASSERT_EQ(appending.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_GT(log.dropped(), 0u);
    EXPECT_LE(log.dropped(), uint64_t{kEvents});
    // Every event is in memory, dropped or not.
    EXPECT_EQ(log.Since(0, "stuck", 1000).size(), size_t{kEvents});
    // Unstick the writer: read the pipe while Flush waits for the rest.
    auto flushed = std::async(std::launch::async, [&log] { log.Flush(); });
    fcntl(reader, F_SETFL, 0);  // blocking reads from here
    while (flushed.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
      char buf[65536];
      pollfd pfd{reader, POLLIN, 0};
      if (poll(&pfd, 1, 100) > 0) {
        ssize_t n = read(reader, buf, sizeof(buf));
        if (n > 0) received.append(buf, static_cast<size_t>(n));
      }
    }
    // What is written is the events not dropped, in order, whole lines.
    fcntl(reader, F_SETFL, O_NONBLOCK);
    char buf[65536];
    for (ssize_t n; (n = read(reader, buf, sizeof(buf))) > 0;)
      received.append(buf, static_cast<size_t>(n));
    std::vector<uint64_t> seqs;
    size_t start = 0;
    for (size_t nl; (nl = received.find('\n', start)) != std::string::npos; start = nl + 1)
      seqs.push_back(
          nlohmann::json::parse(received.substr(start, nl - start))["seq"].get<uint64_t>());
    EXPECT_EQ(start, received.size());  // no partial line
    EXPECT_EQ(seqs.size() + log.dropped(), size_t{kEvents});
    for (size_t i = 1; i < seqs.size(); ++i) EXPECT_LT(seqs[i - 1], seqs[i]);
    EXPECT_EQ(log.pending(), 0u);
  }
  close(reader);
}

TEST_F(EventLogTest, TheDestructorWritesWhatIsQueued) {
  {
    EventLog log(path_, 100, 1 << 20, 1000);
    for (int i = 0; i < 500; ++i) log.Append(Event("bye", 1000 + i));
  }
  EXPECT_EQ(FileLines(), 500u);
}

}  // namespace
}  // namespace egressd::audit
