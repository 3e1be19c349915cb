#include "userspace/metrics/metrics_families.h"

#include <limits>
#include <map>
#include <string>
#include <utility>

#include "userspace/metrics/latency_histogram.h"

namespace egressd::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using sandbox::SandboxStats;

// One series' value read from one sandbox's figures.
using Read = uint64_t (*)(const SandboxStats&);
#define KERNEL(field) [](const SandboxStats& s) -> uint64_t { return s.kernel.field; }
#define PROXY(field) \
  [](const SandboxStats& s) -> uint64_t { return s.proxy->field.load(std::memory_order_relaxed); }

struct Sample {
  std::vector<ClientMetric::Label> labels;  // after `sandbox` and `policy`
  Read read;
};

struct SandboxFamily {
  const char* name;
  const char* help;
  MetricType type;
  std::vector<Sample> samples;
};

// Every per-sandbox counter and gauge; the names of `egressctl stats` in
// the comments of sandbox_view.h say exactly what each counts.
const std::vector<SandboxFamily>& SandboxFamilies() {
  static const std::vector<SandboxFamily> families = {
      {"egressd_connections_redirected_total",
       "TCP connects of the sandbox the kernel redirected to the proxy",
       MetricType::Counter,
       {{{}, KERNEL(connect_redirected)}}},
      {"egressd_connections_total",
       "Connections the proxy accepted from the sandbox",
       MetricType::Counter,
       {{{}, PROXY(connections)}}},
      {"egressd_connections_denied_total",
       "Connections refused: by the kernel at connect() (deny_cidrs), or closed by the proxy's "
       "policy (TLS SNI, allow_tcp, no SNI)",
       MetricType::Counter,
       {{{{"layer", "kernel"}}, KERNEL(connect_denied)},
        {{{"layer", "proxy"}}, PROXY(connections_denied)}}},
      {"egressd_requests_total",
       "HTTP requests of the sandbox: forwarded (allowed), refused by policy (denied, 403), "
       "refused as malformed (400)",
       MetricType::Counter,
       {{{{"decision", "allowed"}}, PROXY(requests_allowed)},
        {{{"decision", "denied"}}, PROXY(requests_denied)},
        {{{"decision", "malformed"}}, PROXY(bad_requests)}}},
      {"egressd_requests_injected_total",
       "HTTP requests a handler added a credential to",
       MetricType::Counter,
       {{{}, PROXY(requests_injected)}}},
      {"egressd_proxied_bytes_total",
       "Bytes the proxy sent to upstreams (up) and back to the sandbox (down)",
       MetricType::Counter,
       {{{{"direction", "up"}}, PROXY(bytes_up)}, {{{"direction", "down"}}, PROXY(bytes_down)}}},
      {"egressd_tls_connections_total",
       "TLS connections passed through by SNI, or terminated by egressd (tls.intercept)",
       MetricType::Counter,
       {{{{"handling", "passthrough"}}, PROXY(tls_passthrough)},
        {{{"handling", "intercepted"}}, PROXY(tls_intercepted)}}},
      {"egressd_upstream_errors_total",
       "Upstreams that failed a request: no address, connect failed, a malformed response (502)",
       MetricType::Counter,
       {{{}, PROXY(upstream_errors)}}},
      {"egressd_upstream_tls_errors_total",
       "Intercepted upstreams whose TLS handshake or certificate check failed (502)",
       MetricType::Counter,
       {{{}, PROXY(upstream_tls_errors)}}},
      {"egressd_limits_hit_total",
       "Limits that tripped: --header-timeout (408), --connect-timeout (504), --response-timeout "
       "(504), --idle-timeout, a request head too large (431/414), "
       "--max-connections-per-sandbox (refused at accept)",
       MetricType::Counter,
       {{{{"limit", "header_timeout"}}, PROXY(header_timeouts)},
        {{{"limit", "connect_timeout"}}, PROXY(connect_timeouts)},
        {{{"limit", "response_timeout"}}, PROXY(response_timeouts)},
        {{{"limit", "idle_timeout"}}, PROXY(idle_timeouts)},
        {{{"limit", "head_too_large"}}, PROXY(heads_too_large)},
        {{{"limit", "max_connections"}}, PROXY(connections_refused_limit)}}},
      {"egressd_websocket_violations_total",
       "WebSocket tunnels closed on a frame that broke the rules",
       MetricType::Counter,
       {{{}, PROXY(websocket_violations)}}},
      {"egressd_udp_denied_total",
       "UDP sends or connects refused by the kernel (not DNS, or deny_cidrs)",
       MetricType::Counter,
       {{{}, KERNEL(udp_denied)}}},
      {"egressd_sockets_denied_total",
       "socket() calls refused by the kernel (raw, ping, SCTP, MPTCP, UDP-Lite)",
       MetricType::Counter,
       {{{}, KERNEL(socket_denied)}}},
      {"egressd_sockopts_denied_total",
       "setsockopt() of a routing header or IP source route refused by the kernel",
       MetricType::Counter,
       {{{}, KERNEL(sockopt_denied)}}},
      {"egressd_egress_dropped_total",
       "Packets the kernel's backstop dropped (to a non-loopback address no hook judged)",
       MetricType::Counter,
       {{{}, KERNEL(egress_dropped)}}},
      {"egressd_dns_redirected_total",
       "DNS sends and TCP connects (port 53) the kernel sent to the sandbox's DNS listener",
       MetricType::Counter,
       {{{}, KERNEL(dns_redirected)}}},
      {"egressd_dns_queries_total",
       "DNS queries from the sandbox",
       MetricType::Counter,
       {{{}, PROXY(dns_queries)}}},
      {"egressd_dns_denied_total",
       "DNS queries answered NXDOMAIN by policy",
       MetricType::Counter,
       {{{}, PROXY(dns_refused)}}},
      {"egressd_dns_servfail_total",
       "DNS queries answered SERVFAIL: the upstream refused, could not be sent to, or did not "
       "answer",
       MetricType::Counter,
       {{{}, PROXY(dns_servfail)}}},
      {"egressd_open_connections",
       "Proxied connections of the sandbox open now",
       MetricType::Gauge,
       {{{}, PROXY(open_connections)}}},
  };
  return families;
}

#undef KERNEL
#undef PROXY

struct HistogramFamily {
  const char* name;
  const char* help;
  LatencyHistogram sandbox::ProxyCounters::*histogram;
};

const HistogramFamily kHistograms[] = {
    {"egressd_upstream_connect_duration_seconds",
     "Upstream TCP connects that succeeded, from the connect to its completion",
     &sandbox::ProxyCounters::upstream_connect},
    {"egressd_request_duration_seconds",
     "Forwarded HTTP requests, from the allowed request head to the end of the response",
     &sandbox::ProxyCounters::request_duration},
};

// Sandboxes with the same labels, which one series adds up.
using Group = std::vector<const SandboxStats*>;
using Groups = std::map<std::pair<std::string, std::string>, Group>;

std::vector<ClientMetric::Label> SeriesLabels(const Groups::value_type& group,
                                              const std::vector<ClientMetric::Label>& extra) {
  std::vector<ClientMetric::Label> labels = {{"sandbox", group.first.first},
                                             {"policy", group.first.second}};
  labels.insert(labels.end(), extra.begin(), extra.end());
  return labels;
}

MetricFamily SandboxValues(const SandboxFamily& f, const Groups& groups) {
  MetricFamily family{f.name, f.help, f.type, {}};
  for (const auto& group : groups) {
    for (const Sample& sample : f.samples) {
      uint64_t sum = 0;
      for (const SandboxStats* s : group.second) sum += sample.read(*s);
      ClientMetric metric;
      metric.label = SeriesLabels(group, sample.labels);
      if (f.type == MetricType::Counter)
        metric.counter.value = static_cast<double>(sum);
      else
        metric.gauge.value = static_cast<double>(sum);
      family.metric.push_back(std::move(metric));
    }
  }
  return family;
}

MetricFamily SandboxHistogram(const HistogramFamily& f, const Groups& groups) {
  MetricFamily family{f.name, f.help, MetricType::Histogram, {}};
  for (const auto& group : groups) {
    LatencyHistogram::Snapshot total;
    for (const SandboxStats* s : group.second) {
      LatencyHistogram::Snapshot one = ((*s->proxy).*f.histogram).Read();
      for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) total.counts[i] += one.counts[i];
      total.count += one.count;
      total.sum_seconds += one.sum_seconds;
    }
    ClientMetric metric;
    metric.label = SeriesLabels(group, {});
    metric.histogram.sample_count = total.count;
    metric.histogram.sample_sum = total.sum_seconds;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
      cumulative += total.counts[i];
      double bound = i < LatencyHistogram::kBoundsSeconds.size()
                         ? LatencyHistogram::kBoundsSeconds[i]
                         : std::numeric_limits<double>::infinity();
      metric.histogram.bucket.push_back({cumulative, bound});
    }
    family.metric.push_back(std::move(metric));
  }
  return family;
}

MetricFamily One(const char* name, const char* help, MetricType type, uint64_t value,
                 std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (type == MetricType::Counter)
    metric.counter.value = static_cast<double>(value);
  else
    metric.gauge.value = static_cast<double>(value);
  return {name, help, type, {std::move(metric)}};
}

// A family of one series per label value.
MetricFamily ByLabel(const char* name, const char* help, const char* label,
                     std::vector<std::pair<const char*, uint64_t>> values) {
  MetricFamily family{name, help, MetricType::Counter, {}};
  for (const auto& [value, count] : values) {
    ClientMetric metric;
    metric.label = {{label, value}};
    metric.counter.value = static_cast<double>(count);
    family.metric.push_back(std::move(metric));
  }
  return family;
}

std::vector<MetricFamily> DaemonFamilies(const DaemonFigures& d) {
  constexpr MetricType kCounter = MetricType::Counter, kGauge = MetricType::Gauge;
  return {
      One("egressd_attached_sandboxes", "Sandboxes attached now", kGauge, d.attached_sandboxes),
      One("egressd_kernel_events_total", "Deny events read from the kernel's ring buffer", kCounter,
          d.kernel_events),
      One("egressd_kernel_events_dropped_total",
          "Kernel deny events lost because the ring buffer was full", kCounter,
          d.kernel_events_dropped),
      One("egressd_orig_dst_failed_total",
          "Connects refused because the kernel could not record their original destination",
          kCounter, d.orig_dst_failed),
      One("egressd_proxy_accepted_total", "Connections the proxy accepted, every sandbox's",
          kCounter, d.proxy_accepted),
      ByLabel("egressd_proxy_refused_total",
              "Connections closed at accept before any sandbox's policy: no original destination "
              "recorded, a sandbox that is gone, no file descriptor left",
              "reason",
              {{"unknown_origin", d.proxy_unknown_origin},
               {"unknown_sandbox", d.proxy_unknown_sandbox},
               {"no_fd", d.proxy_refused_no_fd}}),
      One("egressd_proxy_accept_errors_total", "Accepts that failed (out of descriptors or memory)",
          kCounter, d.proxy_accept_errors),
      One("egressd_upstream_socket_errors_total",
          "Upstream sockets that could not be made (out of descriptors or memory)", kCounter,
          d.upstream_socket_errors),
      One("egressd_relay_buffer_errors_total",
          "Relay buffers that could not be mapped (out of memory): the connection closed or got "
          "502",
          kCounter, d.relay_buffer_errors),
      One("egressd_parked_connections",
          "Idle connections holding no relay buffer now (quiet for a second, between requests "
          "or in a tunnel)",
          kGauge, d.parked_connections),
      One("egressd_relay_buffers",
          "Relay buffers mapped now (256 KiB of address space each, pages touched as used): held "
          "by connections or kept for the next ones",
          kGauge, d.relay_buffers),
      One("egressd_upstream_reused_total",
          "Requests sent on an idle upstream connection another client connection left (no "
          "connect, no upstream TLS handshake)",
          kCounter, d.upstream_reused),
      One("egressd_requests_resent_total",
          "Requests sent again on a new upstream connection: the pooled one they went on "
          "closed before any byte of the response (GET, HEAD, OPTIONS without a body)",
          kCounter, d.requests_resent),
      One("egressd_pooled_upstreams",
          "Idle upstream connections kept now for the next request to the same place", kGauge,
          d.pooled_upstreams),
      One("egressd_dns_malformed_total", "Malformed DNS queries from sandboxes, dropped", kCounter,
          d.dns_malformed),
      One("egressd_dns_overloaded_total",
          "DNS queries or TCP connections of sandboxes shed (too many in flight)", kCounter,
          d.dns_overloaded),
      One("egressd_dns_upstream_errors_total",
          "Relayed DNS queries that could not be sent to the upstream resolver", kCounter,
          d.dns_upstream_errors),
      ByLabel("egressd_dns_upstream_mismatched_total",
              "Datagrams on egressd's DNS upstream sockets that were not the awaited answer "
              "(dropped): the sandboxes' relay, egressd's own resolver",
              "client",
              {{"relay", d.dns_upstream_mismatched}, {"resolver", d.resolver_upstream_mismatched}}),
      One("egressd_audit_events_total", "Audit events recorded", kCounter, d.audit_events),
      One("egressd_audit_events_suppressed_total",
          "Audit events left out by the per-instance rate limit", kCounter, d.audit_suppressed),
      One("egressd_audit_lines_dropped_total",
          "Audit lines not written to the file because its queue was full", kCounter,
          d.audit_dropped),
      One("egressd_audit_write_errors_total", "Failed writes of the audit file", kCounter,
          d.audit_write_errors),
      One("egressd_audit_pending_lines", "Audit lines queued for the file, not written yet", kGauge,
          d.audit_pending),
      One("egressd_api_errors_total", "Control API requests answered with an error", kCounter,
          d.api_errors),
  };
}

}  // namespace

std::vector<MetricFamily> BuildFamilies(const MetricsSnapshot& snapshot) {
  Groups groups;
  for (const SandboxStats& s : snapshot.sandboxes)
    if (s.proxy) groups[{s.instance, s.policy}].push_back(&s);
  std::vector<MetricFamily> out;
  for (const SandboxFamily& f : SandboxFamilies()) out.push_back(SandboxValues(f, groups));
  for (const HistogramFamily& f : kHistograms) out.push_back(SandboxHistogram(f, groups));
  for (MetricFamily& f : DaemonFamilies(snapshot.daemon)) out.push_back(std::move(f));
  return out;
}

}  // namespace egressd::metrics
