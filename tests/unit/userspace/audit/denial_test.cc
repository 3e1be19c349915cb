#include "userspace/audit/denial.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>

namespace egressd::audit {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A sandbox flooding denies must not flood the daemon's log: the log line
// follows the event's per-instance rate limit.
TEST(RecordDenial, LogsOnlyTheDenialsTheEventLogKeeps) {
  char dir[] = "/tmp/denial-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/audit.jsonl";
  std::ostringstream captured;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured));
  logger->set_level(spdlog::level::info);
  spdlog::set_default_logger(logger);
  {
    EventLog events(path, /*memory_events=*/100, /*max_file_bytes=*/1 << 20,
                    /*per_instance_per_second=*/3, /*max_queued_lines=*/100);
    uint64_t kept = 0;
    for (int i = 0; i < 10; ++i) {
      AuditEvent e;
      e.instance = "flood";
      e.layer = "proxy";
      e.reason = "denied";
      e.enforced = true;
      e.time_ms = 1'000'000;  // one second: three kept, seven left out
      if (RecordDenial(&events, 7, e) != 0) ++kept;
    }
    EXPECT_EQ(kept, 3u);
    EXPECT_EQ(events.suppressed(), 7u);
  }
  spdlog::set_default_logger(previous);
  EXPECT_EQ(Count(captured.str(), "instance=flood"), 3u) << captured.str();
  EXPECT_EQ(Count(captured.str(), "event=0"), 0u) << captured.str();
  std::remove(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace egressd::audit
