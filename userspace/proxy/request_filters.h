// The request filters: every HTTP request head, plain or decrypted, passes
// through this chain before anything of it goes upstream. Each filter returns
// Continue or a local reply (which ends the request, and the connection).
//
//   Host = SNI (intercepted TLS) -> host policy (host lists, the bound
//   handler's host-level steps) -> request body rule -> the bound handler's
//   request-level steps (methods, paths, headers, credentials) -> upgrade
//   (WebSocket only) -> forward
//
// Filters see the head as a structure (RequestHead), never bytes or codec
// state; a filter that changes it makes the session serialize it again.
#pragma once

#include <cstdint>
#include <string>

#include "policy/ip_address.h"
#include "userspace/audit/event_log.h"
#include "userspace/proxy/local_reply.h"
#include "userspace/proxy/request_head.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::proxy {

struct FilterVerdict {
  bool reply = false;  // false: continue
  LocalReply local;    // reply: what the client is told

  static FilterVerdict Continue() { return {}; }
  static FilterVerdict Reply(LocalReply local) { return {true, std::move(local)}; }
};

struct RequestContext {
  const sandbox::SandboxView& view;  // read for this request: a policy switch applies to the next
  audit::EventLog* events;           // where denies are recorded (may be null)
  policy::IpAddress origin_addr;     // the connection's original destination
  uint16_t origin_port;
  RequestHead& head;
  // An intercepted connection: the SNI it was made for (lowercase, no
  // trailing dot). Every request on it must be for that host.
  const std::string* tls_sni = nullptr;
  // The sandbox's secrets as of this request (null: none can be found).
  const policy::SecretSource* secrets = nullptr;
  bool websocket = false;  // set by the chain: the request upgrades to WebSocket
};

// Runs the chain; counts what it refuses (requests_denied, bad_requests).
FilterVerdict RunRequestFilters(RequestContext& ctx);

}  // namespace egressd::proxy
