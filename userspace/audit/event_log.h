// The audit trail: every deny, from any layer, with who, where and why. Kept
// in memory (bounded) for `egressctl events`, and appended as JSON lines to a
// file in the state dir (rotated at a size limit, one previous file kept).
// The file is written by a thread of its own from a bounded queue: Append
// never waits for the disk; a line the full queue cannot take is dropped and
// counted (the in-memory copy stays).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace egressd::audit {

struct AuditEvent {
  uint64_t seq = 0;      // assigned by the log, increasing
  int64_t time_ms = 0;   // wall clock, milliseconds since the epoch
  std::string instance;  // "-" when the sandbox is not known
  std::string cgroup;
  std::string layer;  // "kernel", "proxy", "dns"; "audit" for the log's own notices
  std::string address;
  uint16_t port = 0;
  std::string host;  // SNI, Host or name when known
  std::string reason;
  bool enforced = true;
  std::string handler;  // the handler whose step decided, if one did
};

nlohmann::json ToJson(const AuditEvent& event);

class EventLog {
 public:
  // Past `per_instance_per_second` events of one instance in one second (of
  // the events' own time), events are counted instead of kept, and the first
  // event of that instance in a later second is preceded by a notice saying
  // how many were left out: a flood cannot rotate everyone else's events away.
  // At most `max_queued_lines` lines wait for the file writer.
  EventLog(std::string path, size_t memory_events = 10000, size_t max_file_bytes = 16 << 20,
           uint32_t per_instance_per_second = 200, size_t max_queued_lines = 65536);
  ~EventLog();  // writes what is queued, then stops the writer
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;
  // Thread-safe; never waits for the file. Returns the event's seq, or 0 when
  // the rate limit left it out.
  uint64_t Append(AuditEvent event);
  // Returns once every line appended before the call is written to the file
  // (or failed to be): for a clean shutdown and for tests.
  void Flush();
  // Events with seq > after_seq, oldest first, at most `limit`, optionally of one instance.
  std::vector<AuditEvent> Since(uint64_t after_seq, const std::string& instance,
                                size_t limit) const;
  uint64_t appended() const;
  uint64_t write_errors() const;
  uint64_t suppressed() const;  // left out by the rate limit, in all
  uint64_t dropped() const;     // not written to the file: its queue was full
  uint64_t pending() const;     // queued for the file, not written yet

 private:
  // Writer thread only. False when the line (or a rotation before it) failed.
  bool WriteLine(const std::string& line);
  uint64_t AppendLocked(AuditEvent event);
  void RunWriter();

  struct Window {
    int64_t second = 0;
    uint32_t count = 0;
    uint64_t suppressed = 0;
  };

  std::string path_;
  size_t memory_events_;
  size_t max_file_bytes_;
  size_t max_queued_;
  mutable std::mutex mu_;
  std::deque<AuditEvent> recent_;
  uint64_t next_seq_ = 1;
  uint32_t per_second_;
  std::unordered_map<std::string, Window> windows_;  // by instance
  uint64_t suppressed_ = 0;

  // The file writer's queue (under mu_): lines in seq order.
  std::vector<std::string> queue_;
  uint64_t queued_total_ = 0;   // lines ever queued
  uint64_t written_total_ = 0;  // of those, written or failed
  uint64_t dropped_ = 0;
  uint64_t write_errors_ = 0;
  std::chrono::steady_clock::time_point last_drop_warning_{};
  bool stop_ = false;
  std::condition_variable work_cv_;  // lines queued, or stop
  std::condition_variable done_cv_;  // a batch written (Flush waits on it)

  // Writer thread only.
  int fd_ = -1;
  size_t file_bytes_ = 0;
  std::thread writer_;
};

}  // namespace egressd::audit
