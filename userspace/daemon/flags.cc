#include "userspace/daemon/flags.h"

#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <cxxopts.hpp>
#include <tuple>

#include "userspace/dns/resolver.h"
#include "userspace/metrics/metrics_exporter.h"

namespace egressd::daemon {
namespace {

// A whole decimal number in [min, max], or an error naming the flag.
StatusOr<int64_t> ParseNumber(const char* flag, const std::string& text, int64_t min, int64_t max) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max)
    return EGRESSD_ERROR("{} {}: expected a number from {} to {}", flag, text, min, max);
  return value;
}

Status CheckNotEmpty(const char* flag, const std::string& value) {
  if (value.empty()) return EGRESSD_ERROR("{}: must not be empty", flag);
  return {};
}

}  // namespace

StatusOr<uint16_t> ParseProxyPort(const std::string& text) {
  // 0: the kernel picks a free port; egressd reports it (ready line, status).
  auto port = ParseNumber("--proxy-port", text, 0, 65535);
  if (!port.ok()) return port.status();
  return static_cast<uint16_t>(*port);
}

StatusOr<std::chrono::seconds> ParseSeconds(const char* flag, const std::string& text,
                                            int64_t max_seconds) {
  auto seconds = ParseNumber(flag, text, 1, max_seconds);
  if (!seconds.ok())
    return EGRESSD_ERROR("{} must be a whole number of seconds from 1 to {}, not \"{}\"", flag,
                         max_seconds, text);
  return std::chrono::seconds(*seconds);
}

StatusOr<size_t> ParseAuditLogMaxBytes(const std::string& text) {
  constexpr int64_t kMin = 4096, kMax = int64_t{1} << 40;
  auto bytes = ParseNumber("--audit-log-max-bytes", text, kMin, kMax);
  if (!bytes.ok()) return bytes.status();
  return static_cast<size_t>(*bytes);
}

StatusOr<uint64_t> ParseMaxConnectionsPerSandbox(const std::string& text) {
  auto n = ParseNumber("--max-connections-per-sandbox", text, 1, kMaxConnectionsPerSandbox);
  if (!n.ok()) return n.status();
  return static_cast<uint64_t>(*n);
}

StatusOr<int> ParseWorkers(const std::string& text) {
  if (text.empty()) return 0;
  constexpr int kMaxWorkers = 256;
  auto workers = ParseNumber("--workers", text, 1, kMaxWorkers);
  if (!workers.ok()) return workers.status();
  return static_cast<int>(*workers);
}

StatusOr<spdlog::level::level_enum> ParseLogLevel(const std::string& text) {
  // spdlog maps anything it does not know to "off".
  auto level = spdlog::level::from_str(text);
  if (level == spdlog::level::off && text != "off")
    return EGRESSD_ERROR(
        "--log-level {}: expected trace, debug, info, warn, error, critical or off", text);
  return level;
}

Status CheckPolicyDir(const std::string& dir) {
  EGRESSD_RETURN_IF_ERROR(CheckNotEmpty("--policy-dir", dir));
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0)
    return EGRESSD_ERROR("--policy-dir {}: {} (create it, or point --policy-dir elsewhere)", dir,
                         strerror(errno));
  if (!S_ISDIR(st.st_mode)) return EGRESSD_ERROR("--policy-dir {}: not a directory", dir);
  return {};
}

Status CheckStateDir(const std::string& dir) {
  EGRESSD_RETURN_IF_ERROR(CheckNotEmpty("--state-dir", dir));
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    return EGRESSD_ERROR("--state-dir {}: not a directory", dir);
  return {};
}

Status CheckSecretsDir(const std::string& dir) {
  EGRESSD_RETURN_IF_ERROR(CheckNotEmpty("--secrets-dir", dir));
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    return EGRESSD_ERROR("--secrets-dir {}: not a directory", dir);
  return {};
}

Status CheckSocketPath(const std::string& path) {
  EGRESSD_RETURN_IF_ERROR(CheckNotEmpty("--socket", path));
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return EGRESSD_ERROR("--socket {}: longer than a unix socket path can be ({} bytes)", path,
                         sizeof(sockaddr_un{}.sun_path) - 1);
  return {};
}

Status CheckCgroupRoot(const std::string& dir) {
  if (!dir.empty() && dir[0] != '/')
    return EGRESSD_ERROR("--cgroup-root {}: must be an absolute path below the cgroup2 mount", dir);
  return {};
}

Status CheckBpffsDir(const std::string& dir) {
  EGRESSD_RETURN_IF_ERROR(CheckNotEmpty("--bpffs", dir));
  return {};
}

Status CheckDnsUpstream(const std::string& text) {
  if (text.empty()) return {};  // the system's resolver
  if (!dns::ParseSocketAddress(text, 53))
    return EGRESSD_ERROR("--dns-upstream {}: expected IP or IP:PORT", text);
  return {};
}

StatusOr<Flags> ParseFlags(int argc, char** argv) {
  cxxopts::Options cli("egressd", "egressd: kernel-enforced egress control for sandboxes (root)");
  Flags flags;
  DaemonOptions& o = flags.options;
  // Values are taken as text and checked below, so every error names its flag.
  // clang-format off
  cli.add_options()
      ("socket", "control API unix socket", cxxopts::value<std::string>()->default_value(o.socket_path))
      ("state-dir", "state directory (attached sandboxes)", cxxopts::value<std::string>()->default_value(o.state_dir))
      ("bpffs", "where BPF maps and links are pinned", cxxopts::value<std::string>()->default_value(o.bpffs))
      ("policy-dir", "directory of NAME.yaml policies (must exist)", cxxopts::value<std::string>()->default_value(o.policy_dir))
      ("secrets-dir", "handlers' secrets: NAME, instances/INSTANCE/NAME (root-only; created 0700 if missing)", cxxopts::value<std::string>()->default_value(o.secrets_dir))
      ("cgroup-root", "parent of cgroups egressd creates (default <cgroup2 mount>/egressd)", cxxopts::value<std::string>()->default_value(""))
      ("proxy-port", "proxy listener port on 127.0.0.1 and ::1 (0: a free one, reported)", cxxopts::value<std::string>()->default_value("15001"))
      ("audit-log-max-bytes", "rotate <state-dir>/audit.jsonl past this size, one old file kept", cxxopts::value<std::string>()->default_value(std::to_string(o.audit_log_max_bytes)))
      ("dns-upstream", "upstream resolver IP[:PORT] (default: first nameserver in /etc/resolv.conf)", cxxopts::value<std::string>()->default_value(""))
      ("dns-timeout", "seconds a sandbox's DNS query waits for the upstream before it gets SERVFAIL (1-60)", cxxopts::value<std::string>()->default_value(std::to_string(o.dns_timeout.count())))
      ("workers", "proxy worker threads, 1-256 (default: one per CPU)", cxxopts::value<std::string>())
      ("upstream-ca", "PEM file of extra trusted roots for intercepted upstreams (next to the system store)", cxxopts::value<std::string>()->default_value(""))
      ("header-timeout", "seconds a request head may take to arrive complete, from its first byte (408)", cxxopts::value<std::string>()->default_value("30"))
      ("connect-timeout", "seconds an upstream connect (and an intercepted upstream's TLS handshake) may take (504)", cxxopts::value<std::string>()->default_value("10"))
      ("response-timeout", "seconds from a complete request to the first byte of its response (504)", cxxopts::value<std::string>()->default_value("300"))
      ("idle-timeout", "seconds without a byte either way after which a proxied connection is closed (1-604800)", cxxopts::value<std::string>()->default_value("300"))
      ("max-connections-per-sandbox", "proxied connections one sandbox may have open at once; more are refused at accept (1-1048576)", cxxopts::value<std::string>()->default_value(std::to_string(o.max_connections_per_sandbox)))
      ("metrics-listen", "serve Prometheus metrics at http://ADDR:PORT/metrics (IPv4:PORT; default off)", cxxopts::value<std::string>()->default_value(""))
      ("log-level", "trace, debug, info, warn, error, critical, off", cxxopts::value<std::string>()->default_value("info"))
      ("version", "print egressd's version and exit")
      ("h,help", "show this help");
  // clang-format on
  cxxopts::ParseResult args;
  try {
    args = cli.parse(argc, argv);
  } catch (const std::exception& e) {
    return EGRESSD_ERROR("{}", e.what());
  }
  if (args.count("help")) {
    flags.help = true;
    flags.help_text = cli.help();
    return flags;
  }
  if (args.count("version")) {
    flags.version = true;
    return flags;
  }
  if (!args.unmatched().empty())
    return EGRESSD_ERROR("unexpected argument {}", args.unmatched()[0]);
  auto text = [&](const char* name) { return args[name].as<std::string>(); };
  o.socket_path = text("socket");
  o.state_dir = text("state-dir");
  o.bpffs = text("bpffs");
  o.policy_dir = text("policy-dir");
  o.secrets_dir = text("secrets-dir");
  o.cgroup_root = text("cgroup-root");
  o.dns_upstream = text("dns-upstream");
  o.upstream_ca = text("upstream-ca");
  if (!o.upstream_ca.empty()) {
    struct stat st {};
    if (stat(o.upstream_ca.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      return EGRESSD_ERROR("--upstream-ca {}: not a readable file", o.upstream_ca);
  }
  auto port = ParseProxyPort(text("proxy-port"));
  if (!port.ok()) return port.status();
  o.proxy_port = *port;
  auto audit_bytes = ParseAuditLogMaxBytes(text("audit-log-max-bytes"));
  if (!audit_bytes.ok()) return audit_bytes.status();
  o.audit_log_max_bytes = *audit_bytes;
  auto workers = ParseWorkers(args.count("workers") ? text("workers") : "");
  if (!workers.ok()) return workers.status();
  o.workers = *workers;
  for (auto [flag, out, max] : {
           std::tuple{"--idle-timeout", &o.idle_timeout, kMaxProxyTimeoutSeconds},
           std::tuple{"--header-timeout", &o.header_timeout, kMaxProxyTimeoutSeconds},
           std::tuple{"--connect-timeout", &o.connect_timeout, kMaxProxyTimeoutSeconds},
           std::tuple{"--response-timeout", &o.response_timeout, kMaxProxyTimeoutSeconds},
           std::tuple{"--dns-timeout", &o.dns_timeout, kMaxDnsTimeoutSeconds},
       }) {
    auto seconds = ParseSeconds(flag, text(flag + 2), max);
    if (!seconds.ok()) return seconds.status();
    *out = *seconds;
  }
  auto max_connections = ParseMaxConnectionsPerSandbox(text("max-connections-per-sandbox"));
  if (!max_connections.ok()) return max_connections.status();
  o.max_connections_per_sandbox = *max_connections;
  if (!text("metrics-listen").empty()) {
    auto listen = metrics::ParseMetricsListen(text("metrics-listen"));
    if (!listen.ok()) return listen.status();
    o.metrics_listen = *listen;
  }
  auto level = ParseLogLevel(text("log-level"));
  if (!level.ok()) return level.status();
  flags.log_level = *level;
  EGRESSD_RETURN_IF_ERROR(CheckSocketPath(o.socket_path));
  EGRESSD_RETURN_IF_ERROR(CheckStateDir(o.state_dir));
  EGRESSD_RETURN_IF_ERROR(CheckBpffsDir(o.bpffs));
  EGRESSD_RETURN_IF_ERROR(CheckPolicyDir(o.policy_dir));
  EGRESSD_RETURN_IF_ERROR(CheckSecretsDir(o.secrets_dir));
  EGRESSD_RETURN_IF_ERROR(CheckCgroupRoot(o.cgroup_root));
  EGRESSD_RETURN_IF_ERROR(CheckDnsUpstream(o.dns_upstream));
  return flags;
}

}  // namespace egressd::daemon
