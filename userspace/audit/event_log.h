// The audit trail: every deny, from any layer, with who, where and why. Kept
// in memory (bounded) for `egressctl events`, and appended as JSON lines to a
// file in the state dir (rotated at a size limit, one previous file kept).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace egressd::audit {

struct AuditEvent {
  uint64_t seq = 0;      // assigned by the log, increasing
  int64_t time_ms = 0;   // wall clock, milliseconds since the epoch
  std::string instance;  // "-" when the sandbox is not known
  std::string cgroup;
  std::string layer;  // "kernel", "proxy" (later "dns")
  std::string address;
  uint16_t port = 0;
  std::string host;  // SNI, Host or name when known
  std::string reason;
  bool enforced = true;
};

nlohmann::json ToJson(const AuditEvent& event);

class EventLog {
 public:
  EventLog(std::string path, size_t memory_events = 10000, size_t max_file_bytes = 16 << 20);
  ~EventLog();
  // Thread-safe; never blocks on anything but the file append.
  void Append(AuditEvent event);
  // Events with seq > after_seq, oldest first, at most `limit`, optionally of one instance.
  std::vector<AuditEvent> Since(uint64_t after_seq, const std::string& instance,
                                size_t limit) const;
  uint64_t appended() const;
  uint64_t write_errors() const;

 private:
  void WriteLine(const std::string& line);

  std::string path_;
  size_t memory_events_;
  size_t max_file_bytes_;
  mutable std::mutex mu_;
  std::deque<AuditEvent> recent_;
  uint64_t next_seq_ = 1;
  int fd_ = -1;
  size_t file_bytes_ = 0;
  uint64_t write_errors_ = 0;
};

}  // namespace egressd::audit
