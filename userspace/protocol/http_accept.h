// The media type a client prefers, from its Accept header (RFC 9110 12.5.1),
// for egressd's own replies: JSON for agents that ask for it, text otherwise.
#pragma once

#include <string_view>

namespace egressd::protocol {

// True when `accept` (the field's value; several fields joined by ", ")
// prefers application/json to text/plain: the most specific range matching
// each type gives its weight (q, default 1; q=0 refuses it); JSON wins on a
// higher weight, or on an equal non-zero one when its range is more specific,
// or equally specific and listed first. An empty or malformed value gives
// false (text). Never reads past `accept`; bounded by its length.
bool AcceptPrefersJson(std::string_view accept);

}  // namespace egressd::protocol
