#include "userspace/metrics/metrics_families.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "userspace/metrics/metrics_exporter.h"

namespace egressd::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;

sandbox::SandboxStats Sandbox(const std::string& instance, const std::string& policy,
                              bool ended = false) {
  sandbox::SandboxStats s;
  s.instance = instance;
  s.policy = policy;
  s.cgroup = "/sys/fs/cgroup/" + instance;
  s.proxy = std::make_shared<sandbox::ProxyCounters>();
  s.ended = ended;
  return s;
}

sandbox::ProxyCounters& Proxy(sandbox::SandboxStats& s) {
  return const_cast<sandbox::ProxyCounters&>(*s.proxy);
}

const MetricFamily& Family(const std::vector<MetricFamily>& families, const std::string& name) {
  auto it = std::find_if(families.begin(), families.end(),
                         [&](const MetricFamily& f) { return f.name == name; });
  EXPECT_NE(it, families.end()) << name;
  return *it;
}

std::string Label(const ClientMetric& m, const std::string& name) {
  for (const auto& l : m.label)
    if (l.name == name) return l.value;
  return "";
}

// The series of `family` with these labels' values.
const ClientMetric* Series(const MetricFamily& family,
                           std::vector<std::pair<std::string, std::string>> labels) {
  for (const auto& m : family.metric) {
    bool all = true;
    for (const auto& [k, v] : labels) all = all && Label(m, k) == v;
    if (all) return &m;
  }
  return nullptr;
}

TEST(MetricsFamilies, SandboxCountersAreLabelledBySandboxAndPolicy) {
  MetricsSnapshot snap;
  snap.sandboxes.push_back(Sandbox("job-1", "agent"));
  snap.sandboxes.push_back(Sandbox("job-2", "strict"));
  Proxy(snap.sandboxes[0]).requests_allowed = 3;
  Proxy(snap.sandboxes[0]).requests_denied = 2;
  Proxy(snap.sandboxes[0]).bytes_up = 100;
  Proxy(snap.sandboxes[0]).open_connections = 4;
  snap.sandboxes[0].kernel.connect_denied = 7;
  Proxy(snap.sandboxes[1]).dns_refused = 5;
  Proxy(snap.sandboxes[1]).connect_timeouts = 1;
  auto families = BuildFamilies(snap);

  const auto& requests = Family(families, "egressd_requests_total");
  EXPECT_EQ(requests.type, prometheus::MetricType::Counter);
  EXPECT_FALSE(requests.help.empty());
  auto* allowed =
      Series(requests, {{"sandbox", "job-1"}, {"policy", "agent"}, {"decision", "allowed"}});
  ASSERT_NE(allowed, nullptr);
  EXPECT_EQ(allowed->counter.value, 3);
  EXPECT_EQ(Series(requests, {{"sandbox", "job-1"}, {"decision", "denied"}})->counter.value, 2);
  EXPECT_EQ(Series(requests, {{"sandbox", "job-2"}, {"decision", "denied"}})->counter.value, 0);
  EXPECT_EQ(Series(Family(families, "egressd_connections_denied_total"),
                   {{"sandbox", "job-1"}, {"layer", "kernel"}})
                ->counter.value,
            7);
  EXPECT_EQ(Series(Family(families, "egressd_proxied_bytes_total"),
                   {{"sandbox", "job-1"}, {"direction", "up"}})
                ->counter.value,
            100);
  EXPECT_EQ(
      Series(Family(families, "egressd_dns_denied_total"), {{"sandbox", "job-2"}})->counter.value,
      5);
  EXPECT_EQ(Series(Family(families, "egressd_limits_hit_total"),
                   {{"sandbox", "job-2"}, {"limit", "connect_timeout"}})
                ->counter.value,
            1);
  const auto& open = Family(families, "egressd_open_connections");
  EXPECT_EQ(open.type, prometheus::MetricType::Gauge);
  EXPECT_EQ(Series(open, {{"sandbox", "job-1"}})->gauge.value, 4);
  // Every sandbox series has exactly these two labels first; no host anywhere.
  for (const auto& f : families)
    for (const auto& m : f.metric) {
      for (const auto& l : m.label) EXPECT_NE(l.name, "host") << f.name;
      if (!m.label.empty() && m.label[0].name == "sandbox") {
        EXPECT_EQ(m.label[1].name, "policy");
      }
    }
}

TEST(MetricsFamilies, HistogramsAreCumulativeWithInfAndCount) {
  MetricsSnapshot snap;
  snap.sandboxes.push_back(Sandbox("job-1", "agent"));
  Proxy(snap.sandboxes[0]).request_duration.Observe(std::chrono::milliseconds(3));
  Proxy(snap.sandboxes[0]).request_duration.Observe(std::chrono::milliseconds(40));
  Proxy(snap.sandboxes[0]).request_duration.Observe(std::chrono::seconds(1000));
  auto families = BuildFamilies(snap);
  const auto& f = Family(families, "egressd_request_duration_seconds");
  EXPECT_EQ(f.type, prometheus::MetricType::Histogram);
  ASSERT_EQ(f.metric.size(), 1u);
  const auto& h = f.metric[0].histogram;
  EXPECT_EQ(h.sample_count, 3u);
  EXPECT_NEAR(h.sample_sum, 1000.043, 1e-6);
  ASSERT_EQ(h.bucket.size(), LatencyHistogram::kBuckets);
  EXPECT_TRUE(std::isinf(h.bucket.back().upper_bound));
  EXPECT_EQ(h.bucket.back().cumulative_count, 3u);
  for (size_t i = 1; i < h.bucket.size(); ++i)
    EXPECT_GE(h.bucket[i].cumulative_count, h.bucket[i - 1].cumulative_count);
  for (const auto& b : h.bucket) {
    if (b.upper_bound == 0.0025) {
      EXPECT_EQ(b.cumulative_count, 0u);
    }
    if (b.upper_bound == 0.005) {
      EXPECT_EQ(b.cumulative_count, 1u);
    }
    if (b.upper_bound == 0.05) {
      EXPECT_EQ(b.cumulative_count, 2u);
    }
    if (b.upper_bound == 300) {
      EXPECT_EQ(b.cumulative_count, 2u);
    }
  }
  EXPECT_EQ(Family(families, "egressd_upstream_connect_duration_seconds")
                .metric[0]
                .histogram.sample_count,
            0u);
}

TEST(MetricsFamilies, AnEndedAndAnAttachedSandboxOfTheSameNameAreOneSeries) {
  MetricsSnapshot snap;
  snap.sandboxes.push_back(Sandbox("job-1", "agent"));
  snap.sandboxes.push_back(Sandbox("job-1", "agent", /*ended=*/true));
  snap.sandboxes.push_back(Sandbox("job-1", "other", /*ended=*/true));
  Proxy(snap.sandboxes[0]).connections = 2;
  Proxy(snap.sandboxes[1]).connections = 5;
  Proxy(snap.sandboxes[2]).connections = 1;
  auto families = BuildFamilies(snap);
  const auto& f = Family(families, "egressd_connections_total");
  ASSERT_EQ(f.metric.size(), 2u);
  EXPECT_EQ(Series(f, {{"policy", "agent"}})->counter.value, 7);
  EXPECT_EQ(Series(f, {{"policy", "other"}})->counter.value, 1);
}

TEST(MetricsFamilies, DaemonFiguresAndTheTextFormat) {
  MetricsSnapshot snap;
  snap.daemon.attached_sandboxes = 2;
  snap.daemon.proxy_unknown_origin = 9;
  auto families = BuildFamilies(snap);
  EXPECT_EQ(Family(families, "egressd_attached_sandboxes").metric[0].gauge.value, 2);
  EXPECT_EQ(Series(Family(families, "egressd_proxy_refused_total"), {{"reason", "unknown_origin"}})
                ->counter.value,
            9);
  // Names are unique, counters end in _total, and the text has HELP and TYPE.
  for (size_t i = 0; i < families.size(); ++i) {
    for (size_t j = i + 1; j < families.size(); ++j) EXPECT_NE(families[i].name, families[j].name);
    if (families[i].type == prometheus::MetricType::Counter) {
      EXPECT_TRUE(families[i].name.ends_with("_total")) << families[i].name;
    }
  }
  std::string text = prometheus::TextSerializer().Serialize(families);
  EXPECT_NE(text.find("# HELP egressd_attached_sandboxes "), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE egressd_proxy_refused_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("egressd_proxy_refused_total{reason=\"unknown_origin\"} 9"),
            std::string::npos)
      << text;
}

TEST(MetricsFamilies, LabelValuesAreEscapedInTheText) {
  MetricsSnapshot snap;
  // Instance names may hold quotes and backslashes (not control characters).
  snap.sandboxes.push_back(Sandbox("a\"b\\c", "p"));
  std::string text = prometheus::TextSerializer().Serialize(BuildFamilies(snap));
  EXPECT_NE(text.find("egressd_connections_total{sandbox=\"a\\\"b\\\\c\",policy=\"p\"} 0"),
            std::string::npos)
      << text;
}

TEST(MetricsListen, TakesAnAddressAndAPort) {
  EXPECT_EQ(*ParseMetricsListen("127.0.0.1:9464"), "127.0.0.1:9464");
  EXPECT_EQ(*ParseMetricsListen("0.0.0.0:1"), "0.0.0.0:1");
  for (const char* bad : {"", "9464", ":9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
                          "127.0.0.1:65536", "127.0.0.1:x", "localhost:9464", "::1:9464", "[::1]",
                          "[::1]:9464", "[127.0.0.1]:9464", "1.2.3.4.5:80", "127.0.0.1:94 64"}) {
    auto r = ParseMetricsListen(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--metrics-listen"), std::string::npos);
  }
}

}  // namespace
}  // namespace egressd::metrics
