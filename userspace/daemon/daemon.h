// Wires the daemon together: BPF programs, resolver, DNS forwarder, sandbox
// registry, proxy workers, audit reader and the control API; and answers the
// control API's commands.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "userspace/common/status.h"
#include "userspace/daemon/instance_lock.h"
#include "userspace/proxy/host_addresses.h"
#include "userspace/proxy/proxy_context.h"
#include "userspace/sandbox/ended_instances.h"

namespace egressd::kernel {
class BpfPrograms;
class AuditReader;
}  // namespace egressd::kernel
namespace egressd::dns {
class Resolver;
class DnsForwarder;
}  // namespace egressd::dns
namespace egressd::sandbox {
class Registry;
}
namespace egressd::audit {
class EventLog;
}
namespace egressd::proxy {
class Proxy;
}
namespace egressd::secrets {
class SecretStore;
}
namespace egressd::metrics {
class MetricsExporter;
struct MetricsSnapshot;
}  // namespace egressd::metrics
namespace egressd::control {
class ControlServer;
struct ControlRequest;
struct Peer;
}  // namespace egressd::control

namespace egressd::daemon {

struct DaemonOptions {
  std::string socket_path = "/run/egressd/egressd.sock";
  std::string state_dir = "/var/lib/egressd";
  std::string bpffs = "/sys/fs/bpf/egressd";
  std::string policy_dir = "/etc/egressd/policies";
  std::string secrets_dir = "/etc/egressd/secrets";  // created 0700 if missing
  std::string cgroup_root;                           // default: <cgroup2 mount>/egressd
  uint16_t proxy_port = 15001;                       // 0: a free one, picked at Start()
  std::string dns_upstream;  // default: first nameserver of /etc/resolv.conf
  std::string upstream_ca;   // extra roots for intercepted upstreams ("" none)
  int workers = 0;
  // How long a sandbox's relayed DNS query waits for the upstream before SERVFAIL.
  std::chrono::seconds dns_timeout{4};
  std::chrono::seconds idle_timeout{300};    // a proxied connection with no byte either way
  std::chrono::seconds header_timeout{30};   // a request head, from its first byte (408)
  std::chrono::seconds connect_timeout{10};  // upstream connect and TLS handshake (504)
  std::chrono::seconds response_timeout{
      300};                               // complete request to the response's first byte (504)
  size_t audit_log_max_bytes = 16 << 20;  // audit.jsonl is rotated past this size
  uint64_t max_connections_per_sandbox = 4096;  // proxied connections open at once
  // --metrics-listen: "" off, else where /metrics is served (ParseMetricsListen's form).
  std::string metrics_listen;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  // Refuses (changing nothing) when another egressd uses the same state
  // dir, bpffs directory or control socket.
  Status Start();
  void Stop();
  // SIGHUP and `egressctl policy reload`: re-reads every sandbox's policy,
  // all or nothing, and logs the result. Returns how many were re-read.
  StatusOr<size_t> ReloadPolicies();

 private:
  StatusOr<nlohmann::json> Handle(const control::ControlRequest& request,
                                  const control::Peer& peer);
  nlohmann::json Status_() const;
  StatusOr<nlohmann::json> Stats(const std::string& target) const;
  nlohmann::json Events(const control::ControlRequest& request) const;
  // What a scrape of --metrics-listen reads (any thread).
  metrics::MetricsSnapshot MetricsFigures() const;
  // secret_set, secret_rm, secret_list (secret_commands.cc); nullopt: not a
  // secret command.
  std::optional<StatusOr<nlohmann::json>> HandleSecretCommand(
      const control::ControlRequest& request);

  class Listeners;

  DaemonOptions options_;
  InstanceLock lock_;  // held from Start() until the process exits
  std::string cgroup2_mount_;
  std::string log_id_;  // tells this run's event numbering from another's
  std::unique_ptr<kernel::BpfPrograms> bpf_;
  std::unique_ptr<audit::EventLog> events_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::unique_ptr<dns::DnsForwarder> forwarder_;
  sandbox::EndedInstances ended_;
  std::unique_ptr<sandbox::Registry> registry_;
  std::unique_ptr<Listeners> listeners_;
  proxy::ProxyGlobalCounters proxy_counters_;
  proxy::HostAddresses host_addresses_;
  std::unique_ptr<secrets::SecretStore> secrets_;  // before proxy_: the workers read it
  std::unique_ptr<proxy::Proxy> proxy_;
  std::shared_ptr<const tls::TlsClientContext> tls_client_;  // for its session counts
  std::unique_ptr<kernel::AuditReader> audit_;
  std::unique_ptr<control::ControlServer> control_;
  std::atomic<uint64_t> kernel_events_{0};
  std::thread reaper_;
  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool reaper_stop_ = false;
  // Audit reader thread only.
  std::chrono::steady_clock::time_point last_drop_check_{};
  uint64_t events_dropped_seen_ = 0;
  std::unique_ptr<metrics::MetricsExporter> metrics_;  // --metrics-listen; stopped first
};

}  // namespace egressd::daemon
