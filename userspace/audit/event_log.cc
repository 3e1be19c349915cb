#include "userspace/audit/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace egressd::audit {

nlohmann::json ToJson(const AuditEvent& e) {
  nlohmann::json out = {{"seq", e.seq},          {"time_ms", e.time_ms}, {"instance", e.instance},
                        {"cgroup", e.cgroup},    {"layer", e.layer},     {"address", e.address},
                        {"port", e.port},        {"host", e.host},       {"reason", e.reason},
                        {"enforced", e.enforced}};
  if (!e.handler.empty()) out["handler"] = e.handler;
  return out;
}

EventLog::EventLog(std::string path, size_t memory_events, size_t max_file_bytes,
                   uint32_t per_instance_per_second)
    : path_(std::move(path)),
      memory_events_(memory_events),
      max_file_bytes_(max_file_bytes),
      per_second_(per_instance_per_second) {
  fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  struct stat st {};
  if (fd_ >= 0 && fstat(fd_, &st) == 0) file_bytes_ = static_cast<size_t>(st.st_size);
}

EventLog::~EventLog() {
  if (fd_ >= 0) close(fd_);
}

void EventLog::WriteLine(const std::string& line) {
  if (file_bytes_ + line.size() > max_file_bytes_) {
    // Rotate: keep one previous file, start a new one. If the rename fails,
    // the current file is kept and appended to (never truncated: that would
    // lose its events); the failure is counted like a write error.
    if (fd_ >= 0) close(fd_);
    const bool rotated = std::rename(path_.c_str(), (path_ + ".1").c_str()) == 0;
    if (!rotated) write_errors_++;
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (rotated ? O_TRUNC : 0),
               0600);
    // After a failed rename the next attempt comes after another max_file_bytes_.
    file_bytes_ = 0;
  }
  if (fd_ < 0 || write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    write_errors_++;  // counted and reported in status; the in-memory copy stays
    return;
  }
  file_bytes_ += line.size();
}

void EventLog::Append(AuditEvent event) {
  if (event.time_ms == 0)
    event.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  std::lock_guard lock(mu_);
  const int64_t second = event.time_ms / 1000;
  if (windows_.size() > 8192 && !windows_.count(event.instance))
    std::erase_if(windows_, [&](const auto& kv) {
      return kv.second.second < second && kv.second.suppressed == 0;
    });
  Window& w = windows_[event.instance];
  if (w.second != second) {
    if (w.suppressed > 0) {
      AuditEvent notice;
      notice.time_ms = event.time_ms;
      notice.instance = event.instance;
      notice.cgroup = event.cgroup;
      notice.layer = "audit";
      notice.reason = std::to_string(w.suppressed) +
                      " events of this instance were left out (over " +
                      std::to_string(per_second_) + " in one second)";
      AppendLocked(std::move(notice));
    }
    w = Window{second, 0, 0};
  }
  if (++w.count > per_second_) {
    w.suppressed++;
    suppressed_++;
    return;
  }
  AppendLocked(std::move(event));
}

void EventLog::AppendLocked(AuditEvent event) {
  event.seq = next_seq_++;
  WriteLine(ToJson(event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  recent_.push_back(std::move(event));
  while (recent_.size() > memory_events_) recent_.pop_front();
}

uint64_t EventLog::suppressed() const {
  std::lock_guard lock(mu_);
  return suppressed_;
}

std::vector<AuditEvent> EventLog::Since(uint64_t after_seq, const std::string& instance,
                                        size_t limit) const {
  std::lock_guard lock(mu_);
  std::vector<AuditEvent> out;
  for (const auto& e : recent_) {
    if (e.seq <= after_seq || (!instance.empty() && e.instance != instance)) continue;
    out.push_back(e);
  }
  if (out.size() > limit) out.erase(out.begin(), out.end() - static_cast<long>(limit));
  return out;
}

uint64_t EventLog::appended() const {
  std::lock_guard lock(mu_);
  return next_seq_ - 1;
}

uint64_t EventLog::write_errors() const {
  std::lock_guard lock(mu_);
  return write_errors_;
}

}  // namespace egressd::audit
