// Writes a request head from its parsed fields, for a head a request filter
// changed: "METHOD target HTTP/x.y", each field as "name: value", the empty
// line; CRLF line ends. A head HttpRequestStream accepted, written back,
// parses again to the same fields (checked by fuzz_http_request).
#pragma once

#include <string>

#include "userspace/protocol/http_request_stream.h"

namespace egressd::protocol {

std::string SerializeRequestHead(const HttpRequestHead& head);

}  // namespace egressd::protocol
