// The audit trail: every deny, from any layer, with who, where and why. Kept
// in memory (bounded) for `egressctl events`, and appended as JSON lines to a
// file in the state dir (rotated at a size limit, one previous file kept).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
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
  EventLog(std::string path, size_t memory_events = 10000, size_t max_file_bytes = 16 << 20,
           uint32_t per_instance_per_second = 200);
  ~EventLog();
  // Thread-safe; never blocks on anything but the file append.
  void Append(AuditEvent event);
  // Events with seq > after_seq, oldest first, at most `limit`, optionally of one instance.
  std::vector<AuditEvent> Since(uint64_t after_seq, const std::string& instance,
                                size_t limit) const;
  uint64_t appended() const;
  uint64_t write_errors() const;
  uint64_t suppressed() const;  // left out by the rate limit, in all

 private:
  void WriteLine(const std::string& line);
  void AppendLocked(AuditEvent event);

  struct Window {
    int64_t second = 0;
    uint32_t count = 0;
    uint64_t suppressed = 0;
  };

  std::string path_;
  size_t memory_events_;
  size_t max_file_bytes_;
  mutable std::mutex mu_;
  std::deque<AuditEvent> recent_;
  uint64_t next_seq_ = 1;
  int fd_ = -1;
  size_t file_bytes_ = 0;
  uint64_t write_errors_ = 0;
  uint32_t per_second_;
  std::unordered_map<std::string, Window> windows_;  // by instance
  uint64_t suppressed_ = 0;
};

}  // namespace egressd::audit
