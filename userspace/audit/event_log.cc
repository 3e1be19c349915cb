#include "userspace/audit/event_log.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
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

namespace {

// A full queue is logged at most this often (each drop is counted).
constexpr auto kDropWarningEvery = std::chrono::seconds(5);

}  // namespace

EventLog::EventLog(std::string path, size_t memory_events, size_t max_file_bytes,
                   uint32_t per_instance_per_second, size_t max_queued_lines)
    : path_(std::move(path)),
      memory_events_(memory_events),
      max_file_bytes_(max_file_bytes),
      max_queued_(max_queued_lines),
      per_second_(per_instance_per_second) {
  fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  struct stat st {};
  if (fd_ >= 0 && fstat(fd_, &st) == 0) file_bytes_ = static_cast<size_t>(st.st_size);
  writer_ = std::thread([this] { RunWriter(); });
}

EventLog::~EventLog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  writer_.join();  // the writer empties the queue before it returns
  if (fd_ >= 0) close(fd_);
}

void EventLog::RunWriter() {
  std::vector<std::string> batch;
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything is written
    batch.swap(queue_);
    lock.unlock();
    // Only this thread touches the file; write_errors_ is counted in a local.
    uint64_t errors = 0;
    for (const std::string& line : batch)
      if (!WriteLine(line)) errors++;
    lock.lock();
    write_errors_ += errors;
    written_total_ += batch.size();
    batch.clear();
    done_cv_.notify_all();
  }
}

void EventLog::Flush() {
  std::unique_lock lock(mu_);
  const uint64_t target = queued_total_;
  done_cv_.wait(lock, [&] { return written_total_ >= target; });
}

bool EventLog::WriteLine(const std::string& line) {
  bool failed = false;
  if (file_bytes_ + line.size() > max_file_bytes_) {
    // Rotate: keep one previous file, start a new one. If the rename fails,
    // the current file is kept and appended to (never truncated: that would
    // lose its events); the failure is counted like a write error.
    if (fd_ >= 0) close(fd_);
    const bool rotated = std::rename(path_.c_str(), (path_ + ".1").c_str()) == 0;
    if (!rotated) failed = true;
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (rotated ? O_TRUNC : 0),
               0600);
    // After a failed rename the next attempt comes after another max_file_bytes_.
    file_bytes_ = 0;
  }
  if (fd_ < 0 || write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    return false;  // counted and reported in status; the in-memory copy stays
  file_bytes_ += line.size();
  return !failed;
}

uint64_t EventLog::Append(AuditEvent event) {
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
    return 0;
  }
  return AppendLocked(std::move(event));
}

uint64_t EventLog::AppendLocked(AuditEvent event) {
  const uint64_t seq = next_seq_++;
  event.seq = seq;
  if (queue_.size() < max_queued_) {
    queue_.push_back(ToJson(event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                     "\n");
    queued_total_++;
    work_cv_.notify_one();
  } else {
    dropped_++;
    auto now = std::chrono::steady_clock::now();
    if (now - last_drop_warning_ >= kDropWarningEvery) {
      last_drop_warning_ = now;
      spdlog::warn(
          "audit: the audit log writer is behind ({} lines queued): {} event(s) not "
          "written to {} so far (kept in memory; see status audit.dropped)",
          queue_.size(), dropped_, path_);
    }
  }
  recent_.push_back(std::move(event));
  while (recent_.size() > memory_events_) recent_.pop_front();
  return seq;
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

uint64_t EventLog::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

uint64_t EventLog::pending() const {
  std::lock_guard lock(mu_);
  return queued_total_ - written_total_;
}

}  // namespace egressd::audit
