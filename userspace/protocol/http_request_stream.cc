#include "userspace/protocol/http_request_stream.h"

#include "userspace/protocol/http_core.h"

namespace egressd::protocol {

HttpRequestStream::HttpRequestStream() : core_(std::make_unique<detail::HttpCore>(true)) {}
HttpRequestStream::~HttpRequestStream() = default;

HttpRequestStream::Step HttpRequestStream::Feed(std::span<const uint8_t> data) {
  if (!core_) core_ = std::make_unique<detail::HttpCore>(true);
  auto step = core_->Feed(data);
  return {static_cast<Event>(step.event), step.consumed};
}

void HttpRequestStream::ReleaseAtRest() {
  if (core_ && core_->AtRest()) core_.reset();
}

const HttpRequestHead& HttpRequestStream::head() const {
  static const HttpRequestHead kNone;
  return core_ ? core_->head() : kNone;
}
int HttpRequestStream::limit_status() const {
  return core_ ? core_->limit_status() : 0;
}

const std::string& HttpRequestStream::error() const {
  static const std::string kNone;
  return core_ ? core_->error() : kNone;
}

}  // namespace egressd::protocol
