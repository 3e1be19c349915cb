// What a scrape of `--metrics-listen` returns, built from figures egressd
// already keeps (the same as `egressctl stats` and `status`): per sandbox,
// labelled `sandbox` (the instance name) and `policy`; and the daemon's
// own. Pure: no I/O, no lock, so it is unit-tested alone. Hosts are never
// labels (unbounded; they are in the events).
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <vector>

#include "userspace/sandbox/sandbox_stats.h"

namespace egressd::metrics {

// The daemon's figures that belong to no sandbox (`egressctl status`).
struct DaemonFigures {
  uint64_t attached_sandboxes = 0;
  uint64_t kernel_events = 0;
  uint64_t kernel_events_dropped = 0;
  uint64_t orig_dst_failed = 0;
  uint64_t proxy_accepted = 0;
  uint64_t proxy_unknown_origin = 0;
  uint64_t proxy_unknown_sandbox = 0;
  uint64_t proxy_refused_no_fd = 0;
  uint64_t proxy_accept_errors = 0;
  uint64_t upstream_socket_errors = 0;
  uint64_t relay_buffer_errors = 0;
  uint64_t parked_connections = 0;
  uint64_t relay_buffers = 0;
  uint64_t upstream_reused = 0;
  uint64_t requests_resent = 0;
  uint64_t pooled_upstreams = 0;
  uint64_t dns_malformed = 0;
  uint64_t dns_overloaded = 0;
  uint64_t dns_upstream_errors = 0;
  uint64_t dns_upstream_mismatched = 0;
  uint64_t resolver_upstream_mismatched = 0;
  uint64_t audit_events = 0;
  uint64_t audit_suppressed = 0;
  uint64_t audit_dropped = 0;
  uint64_t audit_write_errors = 0;
  uint64_t audit_pending = 0;
  uint64_t api_errors = 0;
};

struct MetricsSnapshot {
  // Attached and recently ended sandboxes (sandbox::AllSandboxStats).
  std::vector<sandbox::SandboxStats> sandboxes;
  DaemonFigures daemon;
};

// Every metric family, in a fixed order. Sandboxes with the same instance
// name and policy (one attached again after it ended) are one series: their
// figures are added up.
std::vector<prometheus::MetricFamily> BuildFamilies(const MetricsSnapshot& snapshot);

}  // namespace egressd::metrics
