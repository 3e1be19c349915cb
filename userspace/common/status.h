// Errors as values: every failure carries a message, and the file:line that
// produced it for a debugger or a test's failure message (where()). Log lines
// and replies carry the message alone: no source path reaches an operator.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace egressd {

class Status {
 public:
  Status() = default;  // ok
  static Status Error(std::string message, const char* file, int line) {
    Status s;
    s.error_ = Detail{std::move(message), file, line};
    return s;
  }
  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const std::string& message() const {
    static const std::string kOk = "ok";
    return error_ ? error_->message : kOk;
  }
  // What a log line says: the message ("ok" for success), never a source path.
  std::string ToString() const { return message(); }
  // "file.cc:42" of the error ("" for success): for tests and debugging only.
  std::string where() const {
    if (!error_) return "";
    return fmt::format("{}:{}", error_->file, error_->line);
  }

 private:
  struct Detail {
    std::string message;
    const char* file;
    int line;
  };
  std::optional<Detail> error_;
};

template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  StatusOr(Status status) : value_(std::move(status)) {}  // NOLINT: must be an error
  bool ok() const { return std::holds_alternative<T>(value_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(value_);
  }
  T& value() { return std::get<T>(value_); }
  const T& value() const { return std::get<T>(value_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<T, Status> value_;
};

}  // namespace egressd

// EGRESSD_ERROR("cannot open {}: {}", path, strerror(errno))
#define EGRESSD_ERROR(...) ::egressd::Status::Error(fmt::format(__VA_ARGS__), __FILE__, __LINE__)

#define EGRESSD_RETURN_IF_ERROR(expr) \
  do {                                \
    ::egressd::Status _st = (expr);   \
    if (!_st.ok()) return _st;        \
  } while (0)
