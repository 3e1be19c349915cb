#include "userspace/protocol/http_request_stream.h"

#include "userspace/protocol/http_core.h"

namespace egressd::protocol {

HttpRequestStream::HttpRequestStream() : core_(std::make_unique<detail::HttpCore>(true)) {}
HttpRequestStream::~HttpRequestStream() = default;

HttpRequestStream::Step HttpRequestStream::Feed(std::span<const uint8_t> data) {
  auto step = core_->Feed(data);
  return {static_cast<Event>(step.event), step.consumed};
}

const HttpRequestHead& HttpRequestStream::head() const {
  return core_->head();
}
int HttpRequestStream::limit_status() const {
  return core_->limit_status();
}

const std::string& HttpRequestStream::error() const {
  return core_->error();
}

}  // namespace egressd::protocol
