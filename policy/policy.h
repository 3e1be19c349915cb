// The policy model: what one policy file says, validated.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/cidr.h"
#include "policy/deny_response.h"
#include "policy/handler.h"

namespace egressd::policy {

// One allow_tcp entry: "host:port", "1.2.3.4:22", "192.0.2.0/24:22", "[::1]:5432",
// "[fd00::/8]:443".
struct TcpRule {
  std::string text;                 // as written
  std::optional<std::string> host;  // an exact host name, or
  std::optional<Cidr> cidr;         // an address or block
  uint16_t port = 0;                // 1..65535
};

// kAudit (learning mode): every decision is made and reported as in kEnforce,
// but denied traffic is let through and its events say "enforced": false.
enum class PolicyMode { kEnforce, kAudit };

struct Policy {
  std::string name;
  PolicyMode mode = PolicyMode::kEnforce;
  std::vector<std::string> allowed_hosts;  // normalized patterns
  std::vector<std::string> denied_hosts;
  std::vector<Cidr> deny_cidrs;
  std::vector<TcpRule> allow_tcp;
  // Hosts whose GET and HEAD requests may carry a body (normalized patterns).
  std::vector<std::string> allow_get_body;
  // With denied_hosts and no allowed_hosts: let connections and requests that
  // name no host (TLS without SNI, an IP literal as SNI or Host) through.
  bool allow_unnamed = false;
  // tls: which TLS connections egressd terminates, by SNI (normalized
  // patterns). Without the section nothing is: TLS passes through by SNI.
  std::vector<std::string> tls_intercept;
  std::vector<std::string> tls_passthrough;  // never terminated (pinning clients); wins
  // handlers: named handlers; by_host: host globs bound to one (file order);
  // catch_all: the one for every other request.
  std::map<std::string, Handler> handlers;
  std::vector<HostBinding> by_host;
  std::optional<HandlerBinding> catch_all;
  // A credential (a value with {{secret:...}}) may go upstream over plain
  // HTTP (internal services). Default: only over TLS egressd verified.
  bool allow_plaintext_credentials = false;
  // The status and body of this policy's HTTP denies (deny_response.h);
  // nullopt: egressd's own (text, or JSON for a client that prefers it).
  std::optional<DenyResponse> deny_response;
};

}  // namespace egressd::policy
