// A request head as the request filters see it: the parsed fields, which a
// filter may change. The head goes upstream as received unless a filter
// changed it; then it is serialized again from the fields.
#pragma once

#include <string>
#include <string_view>

#include "userspace/protocol/http_head_writer.h"
#include "userspace/protocol/http_request_stream.h"

namespace egressd::proxy {

class RequestHead {
 public:
  explicit RequestHead(const protocol::HttpRequestHead& parsed) : fields_(parsed) {}

  const protocol::HttpRequestHead& fields() const { return fields_; }
  // Lowercase host of the Host header (or absolute target), port and trailing dot stripped.
  const std::string& host() const { return fields_.host; }
  const std::string& method() const { return fields_.method; }

  // For filters that change the head: marks it changed.
  protocol::HttpRequestHead& Edit() {
    changed_ = true;
    return fields_;
  }
  bool changed() const { return changed_; }

  // "METHOD target HTTP/x.y", the fields in order, the empty line; CRLF.
  std::string Serialize() const { return protocol::SerializeRequestHead(fields_); }

 private:
  protocol::HttpRequestHead fields_;
  bool changed_ = false;
};

}  // namespace egressd::proxy
