#include "userspace/metrics/metrics_exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <charconv>
#include <exception>

namespace egressd::metrics {

StatusOr<std::string> ParseMetricsListen(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return EGRESSD_ERROR("--metrics-listen {}: {} (expected IPv4:PORT, e.g. 127.0.0.1:9464)", text,
                         why);
  };
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port < 1 || port > 65535)
    return bad("the port must be a number from 1 to 65535");
  // The HTTP server (Debian's civetweb) is built without IPv6: it could not listen there.
  if (!host.empty() && host.front() == '[')
    return bad("IPv6 is not supported by the HTTP server egressd is built with");
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1)
    return bad("not an IPv4 address (a name is not taken)");
  return host + ":" + std::to_string(port);
}

uint16_t ListenPort(const std::string& address) {
  size_t colon = address.rfind(':');
  unsigned port = 0;
  if (colon != std::string::npos)
    std::from_chars(address.data() + colon + 1, address.data() + address.size(), port);
  return port <= 65535 ? static_cast<uint16_t>(port) : 0;
}

class MetricsExporter::Collector : public prometheus::Collectable {
 public:
  explicit Collector(Gather gather) : gather_(std::move(gather)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    return BuildFamilies(gather_());
  }

 private:
  Gather gather_;
};

StatusOr<std::unique_ptr<MetricsExporter>> MetricsExporter::Start(const std::string& address,
                                                                  Gather gather) {
  std::unique_ptr<MetricsExporter> exporter(new MetricsExporter());
  exporter->collector_ = std::make_shared<Collector>(std::move(gather));
  try {
    // Two threads: a scrape never waits for another client's slow one.
    exporter->exposer_ = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return EGRESSD_ERROR("--metrics-listen {}: cannot listen: {}", address, e.what());
  }
  exporter->exposer_->RegisterCollectable(exporter->collector_, "/metrics");
  return exporter;
}

MetricsExporter::~MetricsExporter() {
  exposer_.reset();  // its threads end here; then nothing reads collector_
}

}  // namespace egressd::metrics
