// Reads the typed fields of a JSON object that the daemon saved in its state
// dir (state.json, observations.json), without exceptions: the first wrong
// field becomes the error, named by its path ("sandboxes[2].proxy_port: must
// be an integer from 0 to 65535"). Integers must fit their C++ type exactly.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "userspace/common/status.h"

namespace egressd::sandbox::saved_json {

class Field {
 public:
  // `where`: the object's path in the file, "" for the top level.
  Field(const nlohmann::json& object, std::string where)
      : object_(object), where_(std::move(where)) {}

  template <typename T>
  void Required(const char* key, T* out) {
    Read(key, out, /*required=*/true);
  }
  // A missing key (or null) leaves *out as it is.
  template <typename T>
  void Optional(const char* key, T* out) {
    Read(key, out, /*required=*/false);
  }
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

 private:
  std::string Path(const char* key) const { return where_.empty() ? key : where_ + "." + key; }

  template <typename T>
  void Read(const char* key, T* out, bool required) {
    if (!status_.ok()) return;
    auto it = object_.find(key);
    if (it == object_.end() || (!required && it->is_null())) {
      if (required) status_ = EGRESSD_ERROR("{}: missing", Path(key));
      return;
    }
    if (!Convert(*it, out)) status_ = EGRESSD_ERROR("{}: must be {}", Path(key), Expected<T>());
  }

  static bool Convert(const nlohmann::json& j, std::string* out) {
    if (!j.is_string()) return false;
    *out = j.get<std::string>();
    return true;
  }
  static bool Convert(const nlohmann::json& j, bool* out) {
    if (!j.is_boolean()) return false;
    *out = j.get<bool>();
    return true;
  }
  template <typename T>
  requires std::is_integral_v<T>
  static bool Convert(const nlohmann::json& j, T* out) {
    // nlohmann's get<T>() would truncate 70000 to a uint16_t: check the range.
    if (j.is_number_unsigned()) {
      uint64_t v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      *out = static_cast<T>(v);
      return true;
    }
    if (j.is_number_integer()) {  // negative
      int64_t v = j.get<int64_t>();
      if (!std::is_signed_v<T> || v < static_cast<int64_t>(std::numeric_limits<T>::min()))
        return false;
      *out = static_cast<T>(v);
      return true;
    }
    return false;
  }

  template <typename T>
  static std::string Expected() {
    if constexpr (std::is_same_v<T, std::string>)
      return "a string";
    else if constexpr (std::is_same_v<T, bool>)
      return "true or false";
    else
      return "an integer from " + std::to_string(std::numeric_limits<T>::min()) + " to " +
             std::to_string(std::numeric_limits<T>::max());
  }

  const nlohmann::json& object_;
  std::string where_;
  Status status_;
};

}  // namespace egressd::sandbox::saved_json
