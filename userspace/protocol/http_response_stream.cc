#include "userspace/protocol/http_response_stream.h"

#include "userspace/protocol/http_core.h"
#include "userspace/protocol/http_fields.h"

namespace egressd::protocol {

HttpResponseStream::HttpResponseStream() : core_(std::make_unique<detail::HttpCore>(false)) {}
HttpResponseStream::~HttpResponseStream() = default;

void HttpResponseStream::ExpectResponseTo(std::string_view request_method) {
  core_->set_response_to_head(EqualsIgnoreCase(request_method, "HEAD"));
}

HttpResponseStream::Step HttpResponseStream::Feed(std::span<const uint8_t> data) {
  auto step = core_->Feed(data);
  return {static_cast<Event>(step.event), step.consumed};
}

HttpResponseStream::Step HttpResponseStream::Finish() {
  auto step = core_->Finish();
  return {static_cast<Event>(step.event), step.consumed};
}

int HttpResponseStream::status() const {
  return core_->status();
}
bool HttpResponseStream::keep_alive() const {
  return core_->head().keep_alive;
}
bool HttpResponseStream::upgrade() const {
  return core_->head().upgrade;
}
const std::string& HttpResponseStream::error() const {
  return core_->error();
}

const std::vector<std::pair<std::string, std::string>>& HttpResponseStream::headers() const {
  return core_->head().headers;
}

}  // namespace egressd::protocol
