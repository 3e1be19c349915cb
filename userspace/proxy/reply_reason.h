// Why egressd answered a request itself: one stable code per kind of reply,
// sent in the X-Egressd-Reason header (and the JSON body's "reason") so that
// agents can act on it. The codes are part of the interface (README, "What a
// denied client sees"): add new ones, never rename one.
#pragma once

#include "policy/handler_eval.h"

namespace egressd::proxy {

enum class ReplyReason {
  kBadRequest,           // 400: the request head is malformed
  kDeniedBody,           // 400: a GET/HEAD with a body the policy does not allow
  kDeniedHost,           // 403: the host is denied (host lists, a handler's host steps)
  kDeniedMethod,         // 403: a handler's allow_methods
  kDeniedPath,           // 403: a handler's allow_paths
  kDeniedHandler,        // a handler's deny step (its status)
  kDeniedAddress,        // 403: every address of the host is refused (deny_cidrs, own)
  kHostMismatch,         // 421: Host is not the intercepted connection's SNI
  kHeadTooLarge,         // 414/431: the request head is over a limit
  kHeaderTimeout,        // 408: the request head did not complete in time
  kMissingSecret,        // 503: a credential's secret is missing or unusable
  kHandlerFailed,        // 503: a handler value could not be made (a parameter, CR/LF)
  kPlaintextCredential,  // 503: a credential would go over plain HTTP
  kUpstreamUnresolved,   // 502: the host does not resolve
  kUpstreamUnreachable,  // 502: the connect failed
  kUpstreamCertificate,  // 502: the upstream's certificate did not verify (intercepted TLS)
  kUpstreamTls,          // 502: upstream TLS failed otherwise (the handshake, a protocol error)
  kUpstreamTimeout,      // 504: the connect (or upstream handshake) took too long
  kResponseTimeout,      // 504: the response did not begin in time
  kNoResources,          // 502: egressd is out of sockets or memory
};

// "denied_host", "upstream_certificate", ...
const char* ReplyReasonCode(ReplyReason reason);

// A deny by the policy's rules, which the policy's deny_response shapes;
// upstream failures, limits and malformed requests keep egressd's replies.
bool IsPolicyDeny(ReplyReason reason);

// The code of a handler's refusal.
ReplyReason HandlerRefusalReason(const policy::HandlerResult& result);

}  // namespace egressd::proxy
