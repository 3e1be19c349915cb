// What the data plane knows about a sandbox: an immutable view, swapped as a
// whole when its policy changes, plus counters that live as long as the
// sandbox. Workers hold a view for one decision (a connection or a request),
// so a policy switch applies to the next connection and the next request.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "ca/leaf_cache.h"
#include "policy/compiled_policy.h"
#include "userspace/metrics/latency_histogram.h"
#include "userspace/sandbox/observations.h"

namespace egressd::sandbox {

// Proxy-side counters of one sandbox; names are the `egressctl stats --json` keys.
struct ProxyCounters {
  std::atomic<uint64_t> connections{0};         // accepted from the sandbox
  std::atomic<uint64_t> connections_denied{0};  // closed by policy (TLS SNI, allow_tcp, no SNI)
  std::atomic<uint64_t> requests_allowed{0};    // HTTP requests forwarded
  std::atomic<uint64_t> requests_denied{0};     // HTTP requests refused (403) by policy
  std::atomic<uint64_t> bad_requests{0};        // HTTP requests refused (400) as malformed
  std::atomic<uint64_t> upstream_errors{0};     // name did not resolve, connect failed (502)
  std::atomic<uint64_t> bytes_up{0};            // bytes sent to upstreams
  std::atomic<uint64_t> bytes_down{0};          // bytes sent back to the sandbox
  std::atomic<uint64_t> tls_passthrough{0};     // TLS connections passed through by SNI
  std::atomic<uint64_t> dns_queries{0};         // DNS queries from the sandbox
  std::atomic<uint64_t> dns_refused{0};         // answered NXDOMAIN by policy
  // Answered SERVFAIL: the upstream refused, could not be sent to, or did not answer.
  std::atomic<uint64_t> dns_servfail{0};
  // Closed after --idle-timeout without a byte either way.
  std::atomic<uint64_t> idle_timeouts{0};
  // WebSocket tunnels closed on a frame that broke the rules (an event each).
  std::atomic<uint64_t> websocket_violations{0};
  // TLS connections terminated by egressd (tls.intercept), and upstream TLS
  // handshakes or certificate checks that failed (502, an event each).
  std::atomic<uint64_t> tls_intercepted{0};
  std::atomic<uint64_t> upstream_tls_errors{0};
  // Limits that tripped (an event each): a request head not complete within
  // --header-timeout (408), an upstream connect or TLS handshake past
  // --connect-timeout (504), no response within --response-timeout (504), a
  // request head over 64 KiB / 100 fields or a target over 8 KiB (431 / 414).
  std::atomic<uint64_t> header_timeouts{0};
  std::atomic<uint64_t> connect_timeouts{0};
  std::atomic<uint64_t> response_timeouts{0};
  std::atomic<uint64_t> heads_too_large{0};
  // Requests a handler added a credential to ({{secret:...}}).
  std::atomic<uint64_t> requests_injected{0};
  // --max-connections-per-sandbox: the sandbox's proxied connections open
  // now (a gauge), and those refused at accept because that many were open.
  std::atomic<uint64_t> open_connections{0};
  std::atomic<uint64_t> connections_refused_limit{0};
  // Not a stats key: the second (steady clock) of the last refusal recorded
  // as an event; one event a second at most, the counter has them all.
  std::atomic<int64_t> limit_event_second{-1};
  // Not stats keys: durations for the metrics (--metrics-listen). An upstream
  // connect that succeeded, from its start; a forwarded request, from its
  // allowed head to the end of its response.
  metrics::LatencyHistogram upstream_connect;
  metrics::LatencyHistogram request_duration;
};

struct SandboxView {
  uint32_t id = 0;
  uint64_t generation = 0;  // unique per attachment: ids are reused, generations not
  std::string instance;
  std::string cgroup;
  std::shared_ptr<const policy::CompiledPolicy> policy;  // never null
  std::shared_ptr<ProxyCounters> counters;               // never null
  std::shared_ptr<Observations> observed;                // never null; filled in audit mode
  // The sandbox's CA (leaves->ca()) and the leaves it signs, for the names
  // it connects to: leaves->Get(sni). Null when its CA could not be loaded
  // at start: nothing of it can be intercepted then.
  std::shared_ptr<ca::LeafCache> leaves;
  // In a network namespace of its own: the host's loopback is not its loopback.
  bool own_netns = false;
  bool audit() const { return policy->policy().mode == policy::PolicyMode::kAudit; }
};

// Read side of the sandbox registry, as the proxy sees it.
class SandboxDirectory {
 public:
  virtual ~SandboxDirectory() = default;
  // The current view of a sandbox, or null when no such sandbox is attached.
  virtual std::shared_ptr<const SandboxView> Find(uint32_t sandbox_id) const = 0;
  // Whether a loopback port is one of the sandboxes' own listeners (DNS, and
  // proxy for sandboxes in a network namespace): never an upstream.
  virtual bool IsListenerPort(uint16_t port) const = 0;
};

}  // namespace egressd::sandbox
