// `--metrics-listen ADDR:PORT`: serves the metrics (metrics_families.h) in
// Prometheus's text format at /metrics, over HTTP (prometheus-cpp's Exposer,
// its own threads). A scrape gathers the figures then: nothing is added to
// the data path but the two latency histograms of ProxyCounters.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "userspace/common/status.h"
#include "userspace/metrics/metrics_families.h"

namespace prometheus {
class Exposer;
}

namespace egressd::metrics {

// "IPv4:PORT", the port from 1 to 65535 (the HTTP server, Debian's civetweb,
// has no IPv6); errors name the flag. Returns the address as the server takes it.
StatusOr<std::string> ParseMetricsListen(const std::string& text);

// The port of an address ParseMetricsListen returned; 0 for "" (off).
uint16_t ListenPort(const std::string& address);

class MetricsExporter {
 public:
  // What a scrape reads; called on the exporter's threads, so it must be
  // safe to call concurrently with everything else of the daemon.
  using Gather = std::function<MetricsSnapshot()>;

  // Listens on `address` (as ParseMetricsListen returns it); an error says
  // why (the port is taken, ...).
  static StatusOr<std::unique_ptr<MetricsExporter>> Start(const std::string& address,
                                                          Gather gather);
  // Stops listening; no scrape runs once it returns.
  ~MetricsExporter();

 private:
  class Collector;
  MetricsExporter() = default;

  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace egressd::metrics
