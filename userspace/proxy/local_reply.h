// A reply egressd makes itself (a deny, a limit, an upstream failure), as
// the bytes of an HTTP/1.1 response. Every one carries
//
//   X-Egressd-Reason: <stable code, reply_reason.h>
//   X-Egressd-Event: <seq of the audit event recorded for it>  (when one was kept)
//   X-Egressd-Policy: <policy name>
//
// and a body: one line a person reads ("egressd: ... (event 12)"), or JSON
// {"reason","status","host","policy","rule","event","message"} for a client
// whose Accept prefers application/json; or, for a policy deny, the policy's
// own deny_response.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/deny_response.h"
#include "userspace/proxy/reply_reason.h"

namespace egressd::proxy {

struct LocalReply {
  int status = 0;
  ReplyReason reason = ReplyReason::kBadRequest;
  std::string message;  // one line: what happened, naming the host and the policy
  std::string rule;     // the rule that decided, when one did
  uint64_t event = 0;   // the audit event's seq; 0: none was kept
};

// Who the reply goes to and under which policy.
struct ReplyAudience {
  std::string_view host;    // the request's Host, when its head was read
  std::string_view policy;  // the policy's name
  bool prefers_json = false;
  const policy::DenyResponse* deny_response = nullptr;  // the policy's, if it has one
};

// "Forbidden", "Bad Gateway", ...
const char* StatusText(int status);

// The whole response (head and body); it closes the connection.
std::string FormatLocalReply(const LocalReply& reply, const ReplyAudience& audience);

}  // namespace egressd::proxy
