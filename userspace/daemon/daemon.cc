#include "userspace/daemon/daemon.h"

#include <arpa/inet.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "userspace/audit/denial.h"
#include "userspace/audit/event_log.h"
#include "userspace/common/version.h"
#include "userspace/control/control_server.h"
#include "userspace/daemon/runtime_rules_commands.h"
#include "userspace/dns/dns_forwarder.h"
#include "userspace/dns/resolver.h"
#include "userspace/kernel/audit_reader.h"
#include "userspace/kernel/bpf_programs.h"
#include "userspace/kernel/cgroup.h"
#include "userspace/kernel/socket_destroyer.h"
#include "userspace/metrics/metrics_exporter.h"
#include "userspace/proxy/host_addresses.h"
#include "userspace/proxy/proxy.h"
#include "userspace/proxy/proxy_port.h"
#include "userspace/sandbox/registry.h"
#include "userspace/sandbox/sandbox_stats.h"
#include "userspace/secrets/secret_store.h"

namespace egressd::daemon {
namespace {

const char* DenyReasonName(uint32_t reason) {
  switch (reason) {
    case EGRESSD_DENY_NOT_CONFIGURED:
      return "sandbox not configured yet";
    case EGRESSD_DENY_CIDR:
      return "deny_cidrs";
    case EGRESSD_DENY_UDP:
      return "UDP other than DNS";
    case EGRESSD_DENY_SOCKET:
      return "socket type not allowed (raw, ping, SCTP, MPTCP...)";
    case EGRESSD_DENY_PROTO:
      return "protocol not proxied";
    case EGRESSD_DENY_EGRESS:
      return "packet to a non-loopback address no hook judged (backstop)";
    case EGRESSD_DENY_SOCKOPT:
      return "routing header or source route option";
    default:
      return "unknown";
  }
}

std::string FormatEventAddress(const egressd_event& ev) {
  policy::IpAddress addr;
  memcpy(addr.bytes.data(), ev.addr, 16);
  return addr.ToString() + ":" + std::to_string(ntohs(ev.port));
}

nlohmann::json SandboxJson(const sandbox::SandboxInfo& sb) {
  return {{"id", sb.id},
          {"instance", sb.instance},
          {"cgroup", sb.cgroup},
          {"policy", sb.policy ? sb.policy->name() : std::string("")},
          {"policy_source", sb.source.Describe()},
          {"mode", sb.policy && sb.policy->policy().mode == policy::PolicyMode::kAudit ? "audit"
                                                                                       : "enforce"},
          {"netns", sb.netns.empty() ? "host" : sb.netns},
          {"transient", sb.transient},
          // Its policy terminates some TLS (tls.intercept): `run` trusts its CA.
          {"intercept", sb.policy && sb.policy->can_intercept()},
          {"proxy_port", sb.proxy_port},
          {"dns_port", sb.dns_port},
          {"problem", sb.problem}};
}

// Socket and setsockopt denies happen before there is any destination.
bool EventHasAddress(const egressd_event& ev) {
  return ev.reason != EGRESSD_DENY_SOCKET && ev.reason != EGRESSD_DENY_SOCKOPT;
}

// The reason of a kernel event as the audit log shows it.
std::string EventReason(const egressd_event& ev) {
  if (ev.reason == EGRESSD_DENY_SOCKET)
    return fmt::format("{}: type {} protocol {}", DenyReasonName(ev.reason), ev.detail,
                       ev.protocol);
  if (ev.reason == EGRESSD_DENY_SOCKOPT)
    return fmt::format("{}: level {} option {}", DenyReasonName(ev.reason), ev.protocol, ev.detail);
  return DenyReasonName(ev.reason);
}

// What no policy can allow, as `policy suggest` lists it.
std::string DescribeUnexpressible(const egressd_event& ev) {
  if (ev.reason == EGRESSD_DENY_SOCKET)
    return fmt::format("socket type {} protocol {}", ev.detail, ev.protocol);
  if (ev.reason == EGRESSD_DENY_UDP) return "UDP to " + FormatEventAddress(ev);
  if (ev.reason == EGRESSD_DENY_CIDR) return "deny_cidrs hit: " + FormatEventAddress(ev);
  if (ev.reason == EGRESSD_DENY_SOCKOPT)
    return fmt::format("setsockopt level {} option {} (routing header)", ev.protocol, ev.detail);
  return std::string(DenyReasonName(ev.reason)) + ": " + FormatEventAddress(ev);
}

// The audit event of an attach that found sockets opened before it.
std::optional<audit::AuditEvent> SocketSweepEvent(const sandbox::SandboxInfo& sb,
                                                  const kernel::SocketSweep& sweep) {
  if (sweep.total() == 0 && sweep.failed == 0) return std::nullopt;
  audit::AuditEvent event;
  event.instance = sb.instance;
  event.cgroup = sb.cgroup;
  event.layer = "kernel";
  event.enforced = sweep.action == kernel::SweepAction::kClose;
  event.reason = fmt::format(
      "{} {} socket(s) opened before attach (TCP {}, UDP {}{})",
      event.enforced ? "closed" : "audit mode: left open", sweep.total(), sweep.tcp, sweep.udp,
      sweep.failed ? fmt::format(", {} could not be closed", sweep.failed) : std::string());
  return event;
}

// One sandbox's `egressctl stats --json` entry.
nlohmann::json StatsJson(const std::string& instance, const std::string& cgroup,
                         const std::string& policy, const egressd_kernel_counters& k,
                         const sandbox::ProxyCounters& p) {
  return {{"instance", instance},
          {"cgroup", cgroup},
          {"policy", policy},
          {"kernel",
           {{"connect_redirected", k.connect_redirected},
            {"connect_denied", k.connect_denied},
            {"udp_denied", k.udp_denied},
            {"socket_denied", k.socket_denied},
            {"dns_redirected", k.dns_redirected},
            {"egress_dropped", k.egress_dropped},
            {"sockopt_denied", k.sockopt_denied}}},
          {"proxy",
           {{"connections", p.connections.load()},
            {"connections_denied", p.connections_denied.load()},
            {"requests_allowed", p.requests_allowed.load()},
            {"requests_denied", p.requests_denied.load()},
            {"bad_requests", p.bad_requests.load()},
            {"upstream_errors", p.upstream_errors.load()},
            {"bytes_up", p.bytes_up.load()},
            {"bytes_down", p.bytes_down.load()},
            {"tls_passthrough", p.tls_passthrough.load()},
            {"idle_timeouts", p.idle_timeouts.load()},
            {"websocket_violations", p.websocket_violations.load()},
            {"tls_intercepted", p.tls_intercepted.load()},
            {"upstream_tls_errors", p.upstream_tls_errors.load()},
            {"header_timeouts", p.header_timeouts.load()},
            {"connect_timeouts", p.connect_timeouts.load()},
            {"response_timeouts", p.response_timeouts.load()},
            {"heads_too_large", p.heads_too_large.load()},
            {"requests_injected", p.requests_injected.load()},
            {"open_connections", p.open_connections.load()},
            {"connections_refused_limit", p.connections_refused_limit.load()}}},
          {"dns",
           {{"queries", p.dns_queries.load()},
            {"refused", p.dns_refused.load()},
            {"servfail", p.dns_servfail.load()}}}};
}

// The same, from the figures sandbox_stats.h gathers.
nlohmann::json StatsJson(const sandbox::SandboxStats& s) {
  nlohmann::json out = StatsJson(s.instance, s.cgroup, s.policy, s.kernel, *s.proxy);
  out["ended"] = s.ended;
  if (s.ended) out["ended_ms"] = s.ended_ms;
  return out;
}

}  // namespace

// Hands each sandbox's listeners to whoever serves them.
class Daemon::Listeners : public sandbox::ListenerSink {
 public:
  explicit Listeners(Daemon* daemon) : daemon_(daemon) {}
  void AddSandboxListeners(uint32_t sandbox_id, sandbox::SandboxListeners l) override {
    std::vector<int> proxy;
    for (UniqueFd* fd : {&l.proxy4, &l.proxy6})
      if (fd->valid()) proxy.push_back(fd->Release());
    if (!proxy.empty()) daemon_->proxy_->AddSandboxListeners(sandbox_id, std::move(proxy));
    std::vector<UniqueFd> udp, tcp;
    udp.push_back(std::move(l.dns_udp4));
    udp.push_back(std::move(l.dns_udp6));
    tcp.push_back(std::move(l.dns_tcp4));
    tcp.push_back(std::move(l.dns_tcp6));
    daemon_->forwarder_->AddSandbox(sandbox_id, std::move(udp), std::move(tcp));
  }
  void RemoveSandboxListeners(uint32_t sandbox_id) override {
    daemon_->proxy_->RemoveSandboxListeners(sandbox_id);
    daemon_->forwarder_->RemoveSandbox(sandbox_id);
  }

 private:
  Daemon* daemon_;
};

Daemon::Daemon(DaemonOptions options) : options_(std::move(options)) {}

Daemon::~Daemon() {
  Stop();
}

Status Daemon::Start() {
  if (geteuid() != 0) return EGRESSD_ERROR("egressd must run as root (it loads BPF programs)");
  auto mount = kernel::FindCgroup2Mount();
  if (!mount.ok()) return mount.status();
  cgroup2_mount_ = *mount;
  if (options_.cgroup_root.empty()) options_.cgroup_root = cgroup2_mount_ + "/egressd";
  options_.cgroup_root = std::filesystem::path(options_.cgroup_root).lexically_normal().string();
  while (options_.cgroup_root.size() > 1 && options_.cgroup_root.back() == '/')
    options_.cgroup_root.pop_back();
  if (options_.cgroup_root.rfind(cgroup2_mount_ + "/", 0) != 0)
    return EGRESSD_ERROR("--cgroup-root {} is not below the cgroup2 mount {}", options_.cgroup_root,
                         cgroup2_mount_);

  // Nothing of another daemon's is touched before these checks and locks.
  EGRESSD_RETURN_IF_ERROR(CheckSocketUnused(options_.socket_path));
  std::error_code ec;
  std::filesystem::create_directories(options_.state_dir, ec);
  if (ec) return EGRESSD_ERROR("state dir {}: {}", options_.state_dir, ec.message());
  EGRESSD_RETURN_IF_ERROR(lock_.LockStateDir(options_.state_dir));
  EGRESSD_RETURN_IF_ERROR(kernel::BpfPrograms::PreparePinDir(options_.bpffs));
  EGRESSD_RETURN_IF_ERROR(lock_.LockBpffs(options_.bpffs));
  chmod(options_.state_dir.c_str(), 0700);
  log_id_ = fmt::format("{}-{}", getpid(),
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());

  events_ =
      std::make_unique<audit::EventLog>(options_.state_dir + "/audit.jsonl",
                                        /*memory_events=*/10000, options_.audit_log_max_bytes);

  auto bpf = kernel::BpfPrograms::Load(options_.bpffs);
  if (!bpf.ok()) return bpf.status();
  bpf_ = std::move(*bpf);

  sockaddr_storage upstream{};
  if (options_.dns_upstream.empty()) {
    auto system = dns::SystemResolver();
    if (!system.ok()) return system.status();
    upstream = *system;
  } else {
    auto parsed = dns::ParseSocketAddress(options_.dns_upstream, 53);
    if (!parsed)
      return EGRESSD_ERROR("--dns-upstream {}: expected IP or IP:PORT", options_.dns_upstream);
    upstream = *parsed;
  }
  dns::Resolver::Options resolver_options;
  resolver_options.upstream = upstream;
  // egressd's own lookups get --dns-timeout in all, as the sandboxes' do.
  resolver_options.timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.dns_timeout) /
      resolver_options.attempts;
  resolver_ = std::make_unique<dns::Resolver>(resolver_options);
  EGRESSD_RETURN_IF_ERROR(resolver_->Start());

  // --proxy-port 0: the kernel picks it, and it is held until the workers listen on it.
  proxy::ProxyPortReservation reserved;
  if (options_.proxy_port == 0) {
    auto picked = proxy::ReserveProxyPort();
    if (!picked.ok()) return picked.status();
    reserved = std::move(*picked);
    options_.proxy_port = reserved.port;
  }

  sandbox::RegistryOptions registry_options;
  registry_options.state_dir = options_.state_dir;
  registry_options.policy_dir = options_.policy_dir;
  registry_options.cgroup2_mount = cgroup2_mount_;
  registry_options.proxy_port = options_.proxy_port;
  registry_options.ended = &ended_;
  // Open tunnels whose host a change now denies are closed right away.
  registry_options.views_changed = [this] {
    if (proxy_) proxy_->RecheckTunnels();
  };
  registry_ = std::make_unique<sandbox::Registry>(registry_options, bpf_.get());
  listeners_ = std::make_unique<Listeners>(this);
  registry_->SetListenerSink(listeners_.get());

  forwarder_ = std::make_unique<dns::DnsForwarder>(upstream, options_.dns_timeout, registry_.get(),
                                                   events_.get());
  EGRESSD_RETURN_IF_ERROR(forwarder_->Start());

  // Interception: built once here (the extra roots file is read now), shared
  // read-only by every worker.
  auto tls_server = tls::TlsServerContext::Create();
  if (!tls_server.ok()) return tls_server.status();
  auto tls_client = tls::TlsClientContext::Create({.extra_roots_file = options_.upstream_ca});
  if (!tls_client.ok())
    return EGRESSD_ERROR("--upstream-ca {}: {}", options_.upstream_ca,
                         tls_client.status().message());

  // Secrets: read now and re-read in the background; the workers only see snapshots.
  secrets_ = std::make_unique<secrets::SecretStore>(options_.secrets_dir);
  EGRESSD_RETURN_IF_ERROR(secrets_->Start());

  proxy::ProxyContext ctx;
  ctx.tls_server = *tls_server;
  ctx.tls_client = *tls_client;
  tls_client_ = *tls_client;
  ctx.options.proxy_port = options_.proxy_port;
  ctx.options.metrics_port = metrics::ListenPort(options_.metrics_listen);
  ctx.options.workers = options_.workers;
  ctx.options.idle_timeout = options_.idle_timeout;
  ctx.options.head_timeout = options_.header_timeout;
  ctx.options.connect_timeout = options_.connect_timeout;
  ctx.options.response_timeout = options_.response_timeout;
  ctx.options.max_connections_per_sandbox = options_.max_connections_per_sandbox;
  ctx.bpf = bpf_.get();
  ctx.sandboxes = registry_.get();
  ctx.resolver = resolver_.get();
  ctx.counters = &proxy_counters_;
  ctx.events = events_.get();
  ctx.host_addresses = &host_addresses_;
  ctx.secrets = secrets_.get();
  proxy_ = std::make_unique<proxy::Proxy>(ctx);
  // Listeners first, then re-adopt, then accept: the pinned programs redirect
  // re-adopted sandboxes to the proxy port all along, and their connections
  // (and DNS queries) wait in the listeners until every sandbox is known
  // again (accepted earlier, one would be refused as an unknown sandbox).
  EGRESSD_RETURN_IF_ERROR(proxy_->Start());
  reserved = {};  // the workers hold the port now
  EGRESSD_RETURN_IF_ERROR(registry_->Restore());
  proxy_->StartAccepting();
  forwarder_->StartServing();

  audit_ = std::make_unique<kernel::AuditReader>();
  EGRESSD_RETURN_IF_ERROR(audit_->Start(bpf_->events_map_fd(), [this](const egressd_event& ev) {
    kernel_events_++;
    auto view = registry_->Find(ev.sandbox_id);
    bool enforced = !(ev.flags & EGRESSD_EVENT_NOT_ENFORCED);
    // Audit mode: the kernel let it through; remember what no policy allows.
    if (!enforced && view) view->observed->Unexpressible(DescribeUnexpressible(ev));
    audit::AuditEvent event;
    event.instance = "-";
    if (view) {
      event.instance = view->instance;
      event.cgroup = view->cgroup;
    } else if (auto ended = ended_.ById(ev.sandbox_id)) {
      // Queued before its sandbox ended, read after: still its event.
      event.instance = ended->instance;
      event.cgroup = ended->cgroup;
    }
    event.layer = "kernel";
    event.enforced = enforced;
    if (EventHasAddress(ev)) {
      policy::IpAddress addr;
      memcpy(addr.bytes.data(), ev.addr, 16);
      event.address = addr.ToString();
      event.port = ntohs(ev.port);
    }
    event.reason = EventReason(ev);
    audit::RecordDenial(events_.get(), ev.sandbox_id, std::move(event));
    // Events the kernel could not queue are never lost silently: log the
    // counter when it moves (checked at most once a second).
    auto now = std::chrono::steady_clock::now();
    if (now - last_drop_check_ >= std::chrono::seconds(1)) {
      last_drop_check_ = now;
      uint64_t dropped = bpf_->ReadGlobalCounter(EGRESSD_GLOBAL_EVENTS_DROPPED);
      if (dropped > events_dropped_seen_) {
        spdlog::warn("audit: {} kernel events were dropped (ring buffer full); {} in total",
                     dropped - events_dropped_seen_, dropped);
        events_dropped_seen_ = dropped;
      }
    }
  }));

  // Sandboxes of `egressctl run` whose egressctl died are removed by the daemon.
  reaper_ = std::thread([this] {
    std::unique_lock lock(reaper_mu_);
    for (unsigned tick = 1; !reaper_stop_; ++tick) {
      reaper_cv_.wait_for(lock, std::chrono::seconds(1));
      if (reaper_stop_) break;
      lock.unlock();
      registry_->ReapOrphans();
      if (tick % 5 == 0) {  // what audit-mode sandboxes did, for `suggest` after a restart
        Status saved = registry_->SaveObservations();
        if (!saved.ok()) spdlog::warn("{}", saved.ToString());
      }
      lock.lock();
    }
  });

  control_ = std::make_unique<control::ControlServer>(
      options_.socket_path, [this](const control::ControlRequest& r, const control::Peer& peer) {
        return Handle(r, peer);
      });
  EGRESSD_RETURN_IF_ERROR(control_->Start());
  // Last: a scrape reads everything above.
  if (!options_.metrics_listen.empty()) {
    auto exporter = metrics::MetricsExporter::Start(options_.metrics_listen,
                                                    [this] { return MetricsFigures(); });
    if (!exporter.ok()) return exporter.status();
    metrics_ = std::move(*exporter);
    spdlog::info("metrics: Prometheus text format at http://{}/metrics", options_.metrics_listen);
  }
  spdlog::info("egressd ready: socket {} proxy port {} dns upstream {} bpffs {}",
               options_.socket_path, options_.proxy_port, dns::FormatSocketAddress(upstream),
               options_.bpffs);
  return {};
}

void Daemon::Stop() {
  // The pinned programs stay attached: sandboxes are refused until we return.
  metrics_.reset();  // scrapes read everything below
  if (control_) control_->Stop();
  {
    std::lock_guard lock(reaper_mu_);
    reaper_stop_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  if (registry_) {
    Status saved = registry_->SaveObservations();
    if (!saved.ok()) spdlog::warn("{}", saved.ToString());
  }
  if (audit_) audit_->Stop();
  // The resolver's thread posts answers to the proxy workers: it stops (and
  // answers "resolver stopped" from then on) before the workers go.
  if (resolver_) resolver_->Stop();
  if (proxy_) proxy_->Stop();
  if (forwarder_) forwarder_->Stop();
  if (secrets_) secrets_->Stop();
  if (events_) events_->Flush();  // every event recorded so far is in the file
}

StatusOr<size_t> Daemon::ReloadPolicies() {
  auto n = registry_->ReloadPolicies();
  if (n.ok()) {
    spdlog::info("policy reload: {} sandbox policies re-read", *n);
    return n;
  }
  std::string why = n.status().message();  // one log line, however many sandboxes failed
  while (!why.empty() && why.back() == '\n') why.pop_back();
  std::replace(why.begin(), why.end(), '\n', ' ');
  spdlog::error("policy reload failed: {}", why);
  return n;
}

nlohmann::json Daemon::Status_() const {
  return {{"pid", getpid()},
          {"version", kVersion},
          {"socket", options_.socket_path},
          {"state_dir", std::filesystem::absolute(options_.state_dir).string()},
          {"bpffs", std::filesystem::absolute(options_.bpffs).string()},
          {"policy_dir", std::filesystem::absolute(options_.policy_dir).string()},
          {"secrets_dir", std::filesystem::absolute(options_.secrets_dir).string()},
          {"cgroup_root", options_.cgroup_root},
          {"proxy_port", options_.proxy_port},
          {"sandboxes", registry_->List().size()},
          {"orig_dst_entries", bpf_->CountOrigDst()},
          {"kernel",
           {{"events", kernel_events_.load()},
            {"events_dropped", bpf_->ReadGlobalCounter(EGRESSD_GLOBAL_EVENTS_DROPPED)},
            {"orig_dst_failed", bpf_->ReadGlobalCounter(EGRESSD_GLOBAL_ORIG_DST_FAILED)}}},
          {"proxy",
           {{"accepted", proxy_counters_.accepted.load()},
            {"unknown_origin", proxy_counters_.unknown_origin.load()},
            {"unknown_sandbox", proxy_counters_.unknown_sandbox.load()},
            {"accept_errors", proxy_counters_.accept_errors.load()},
            {"refused_no_fd", proxy_counters_.refused_no_fd.load()},
            {"upstream_socket_errors", proxy_counters_.upstream_socket_errors.load()},
            {"buffer_errors", proxy_counters_.buffer_errors.load()},
            {"parked_connections", proxy_counters_.parked_connections.load()},
            {"relay_buffers", proxy_counters_.relay_buffers.load()},
            {"upstream_tls_resumed", proxy_counters_.upstream_tls_resumed.load()},
            {"upstream_tls_full", proxy_counters_.upstream_tls_full.load()},
            {"upstream_reused", proxy_counters_.upstream_reused.load()},
            {"pooled_upstreams", proxy_counters_.pooled_upstreams.load()},
            {"requests_resent", proxy_counters_.requests_resent.load()},
            {"upstream_tls_sessions",
             [this] {
               auto c = tls_client_->sessions().counts();
               return nlohmann::json{{"kept", c.kept},
                                     {"offered", c.offered},
                                     {"none", c.none},
                                     {"held", tls_client_->sessions().size()}};
             }()}}},
          {"secrets",
           {{"refreshes", secrets_->counters().refreshes.load()},
            {"file_reads", secrets_->counters().file_reads.load()},
            {"unusable", secrets_->counters().unusable.load()}}},
          {"dns",
           {{"queries", forwarder_->queries()},
            {"refused", forwarder_->refused()},
            {"malformed", forwarder_->malformed()},
            {"overloaded", forwarder_->overloaded()},
            {"upstream_errors", forwarder_->upstream_errors()},
            {"servfail", forwarder_->servfail()},
            {"upstream_mismatched", forwarder_->upstream_mismatched()}}},
          {"resolver", {{"upstream_mismatched", resolver_->upstream_mismatched()}}},
          {"api", {{"errors", control_ ? control_->bad_requests() : 0}}},
          {"audit",
           {{"events", events_->appended()},
            {"write_errors", events_->write_errors()},
            {"suppressed", events_->suppressed()},
            {"dropped", events_->dropped()},
            {"pending", events_->pending()}}}};
}

StatusOr<nlohmann::json> Daemon::Stats(const std::string& target) const {
  nlohmann::json out;
  out["sandboxes"] = nlohmann::json::array();
  for (const auto& sb : sandbox::AttachedSandboxStats(*registry_, *bpf_)) {
    if (!target.empty() && sb.instance != target && sb.cgroup != target &&
        sb.cgroup != cgroup2_mount_ + "/" + target)
      continue;
    out["sandboxes"].push_back(StatsJson(sb));
  }
  if (!target.empty() && out["sandboxes"].empty()) {
    // A sandbox that ended recently: its final figures.
    auto ended = ended_.ByName(target);
    if (!ended && target[0] != '/') ended = ended_.ByName(cgroup2_mount_ + "/" + target);
    if (!ended)
      return EGRESSD_ERROR("no attached sandbox matches \"{}\", nor one of the last {} that ended",
                           target, sandbox::EndedInstances::kKept);
    out["sandboxes"].push_back(StatsJson(sandbox::EndedSandboxStats(*ended)));
  }
  out["kernel_events_dropped"] = bpf_->ReadGlobalCounter(EGRESSD_GLOBAL_EVENTS_DROPPED);
  return out;
}

metrics::MetricsSnapshot Daemon::MetricsFigures() const {
  metrics::MetricsSnapshot out;
  out.sandboxes = sandbox::AllSandboxStats(*registry_, *bpf_, ended_);
  metrics::DaemonFigures& d = out.daemon;
  d.attached_sandboxes = std::count_if(out.sandboxes.begin(), out.sandboxes.end(),
                                       [](const sandbox::SandboxStats& s) { return !s.ended; });
  d.kernel_events = kernel_events_.load();
  d.kernel_events_dropped = bpf_->ReadGlobalCounter(EGRESSD_GLOBAL_EVENTS_DROPPED);
  d.orig_dst_failed = bpf_->ReadGlobalCounter(EGRESSD_GLOBAL_ORIG_DST_FAILED);
  d.proxy_accepted = proxy_counters_.accepted.load();
  d.proxy_unknown_origin = proxy_counters_.unknown_origin.load();
  d.proxy_unknown_sandbox = proxy_counters_.unknown_sandbox.load();
  d.proxy_refused_no_fd = proxy_counters_.refused_no_fd.load();
  d.proxy_accept_errors = proxy_counters_.accept_errors.load();
  d.upstream_socket_errors = proxy_counters_.upstream_socket_errors.load();
  d.relay_buffer_errors = proxy_counters_.buffer_errors.load();
  d.parked_connections =
      static_cast<uint64_t>(std::max<int64_t>(0, proxy_counters_.parked_connections.load()));
  d.relay_buffers =
      static_cast<uint64_t>(std::max<int64_t>(0, proxy_counters_.relay_buffers.load()));
  d.upstream_reused = proxy_counters_.upstream_reused.load();
  d.requests_resent = proxy_counters_.requests_resent.load();
  d.pooled_upstreams =
      static_cast<uint64_t>(std::max<int64_t>(0, proxy_counters_.pooled_upstreams.load()));
  d.dns_malformed = forwarder_->malformed();
  d.dns_overloaded = forwarder_->overloaded();
  d.dns_upstream_errors = forwarder_->upstream_errors();
  d.dns_upstream_mismatched = forwarder_->upstream_mismatched();
  d.resolver_upstream_mismatched = resolver_->upstream_mismatched();
  d.audit_events = events_->appended();
  d.audit_suppressed = events_->suppressed();
  d.audit_dropped = events_->dropped();
  d.audit_write_errors = events_->write_errors();
  d.audit_pending = events_->pending();
  d.api_errors = control_ ? control_->bad_requests() : 0;
  return out;
}

nlohmann::json Daemon::Events(const control::ControlRequest& request) const {
  uint64_t after = request.after_seq.value_or(0);
  uint64_t limit = request.limit.value_or(1000);
  const std::string& instance = request.instance;
  nlohmann::json out;
  out["events"] = nlohmann::json::array();
  for (const auto& e : events_->Since(after, instance, std::min<uint64_t>(limit, 10000)))
    out["events"].push_back(audit::ToJson(e));
  out["last_seq"] = events_->appended();
  out["log_id"] = log_id_;  // another value: the daemon restarted and numbers events afresh
  out["kernel_events_dropped"] = bpf_->ReadGlobalCounter(EGRESSD_GLOBAL_EVENTS_DROPPED);
  return out;
}

StatusOr<nlohmann::json> Daemon::Handle(const control::ControlRequest& request,
                                        const control::Peer& peer) {
  // Sandboxes never steer the daemon, whatever reached them of the socket
  // (root in the host's mount namespace can open it). Unknown peers neither.
  if (peer.cgroup.empty())
    return EGRESSD_ERROR(
        "cannot tell which process or cgroup is asking (a client outside egressd's pid "
        "namespace?): refused");
  if (auto inside = registry_->SandboxContaining(cgroup2_mount_ + peer.cgroup))
    return EGRESSD_ERROR("requests from inside sandbox \"{}\" are refused", *inside);
  const std::string& cmd = request.cmd;
  if (cmd == "status") return Status_();
  if (cmd == "list") {
    nlohmann::json out;
    out["sandboxes"] = nlohmann::json::array();
    for (const auto& sb : registry_->List()) out["sandboxes"].push_back(SandboxJson(sb));
    return out;
  }
  if (cmd == "stats") return Stats(request.target);
  if (cmd == "events") return Events(request);
  if (cmd == "attach") {
    std::string cgroup = request.cgroup;
    std::string name = request.policy;
    std::string file = request.policy_file;
    if (cgroup.empty()) return EGRESSD_ERROR("attach: \"cgroup\" is required");
    if (name.empty() == file.empty())
      return EGRESSD_ERROR(
          "attach: exactly one of \"policy\" (a name) or \"policy_file\" is required");
    sandbox::PolicySource source;
    if (!file.empty()) {
      if (file[0] != '/') return EGRESSD_ERROR("attach: \"policy_file\" must be an absolute path");
      source = {sandbox::PolicySource::Kind::kFile, file};
    } else {
      source = {sandbox::PolicySource::Kind::kName, name};
    }
    sandbox::AttachRequest attach;
    attach.cgroup = cgroup;
    attach.source = source;
    attach.instance = request.instance;
    attach.netns = request.netns;
    if (!attach.netns.empty() && attach.netns != "host" && attach.netns[0] != '/')
      return EGRESSD_ERROR("attach: \"netns\" must be \"host\" or an absolute path");
    attach.transient = request.transient.value_or(false);
    if (attach.transient) {
      // The daemon kills and removes a transient cgroup: only its own.
      auto resolved = kernel::ResolveCgroup(cgroup, cgroup2_mount_);
      if (!resolved.ok()) return resolved.status();
      if (resolved->path.rfind(options_.cgroup_root + "/", 0) != 0)
        return EGRESSD_ERROR("attach: a transient sandbox must be a cgroup under {}, not {}",
                             options_.cgroup_root, resolved->path);
    }
    if (attach.transient) {
      // Owned by the process asking (egressctl run): when it is gone, so is the sandbox.
      attach.owner_pid = peer.pid;
    }
    auto result = registry_->Attach(attach);
    if (!result.ok()) return result.status();
    nlohmann::json out = SandboxJson(result->sandbox);
    out["switched"] = result->switched;
    out["warnings"] = result->warnings;
    out["sockets_closed"] = result->sockets.closed();
    out["sockets_left_open"] = result->sockets.total() - result->sockets.closed();
    if (auto event = SocketSweepEvent(result->sandbox, result->sockets))
      events_->Append(std::move(*event));
    return out;
  }
  if (cmd == "detach") {
    std::string cgroup = request.cgroup;
    if (cgroup.empty()) return EGRESSD_ERROR("detach: \"cgroup\" is required");
    EGRESSD_RETURN_IF_ERROR(registry_->Detach(cgroup));
    return nlohmann::json::object();
  }
  if (cmd == "policy_suggest") {
    std::string instance = request.instance;
    if (instance.empty()) return EGRESSD_ERROR("policy_suggest: \"instance\" is required");
    auto yaml = registry_->Suggest(instance);
    if (!yaml.ok()) return yaml.status();
    return nlohmann::json{{"policy", *yaml}};
  }
  if (cmd == "ca") {
    if (request.instance.empty()) return EGRESSD_ERROR("ca: \"instance\" is required");
    auto pem = registry_->CaCertificate(request.instance);
    if (!pem.ok()) return pem.status();
    return nlohmann::json{{"instance", request.instance}, {"certificate", *pem}};
  }
  if (auto reply = HandleRuntimeRulesCommand(*registry_, request)) return std::move(*reply);
  if (auto secret = HandleSecretCommand(request)) return std::move(*secret);
  if (cmd == "policy_reload") {
    auto n = ReloadPolicies();
    if (!n.ok()) return n.status();
    return nlohmann::json{{"reloaded", *n}};
  }
  if (cmd.empty()) return EGRESSD_ERROR("request has no \"cmd\"");
  return EGRESSD_ERROR("unknown command \"{}\"", cmd);
}

}  // namespace egressd::daemon
