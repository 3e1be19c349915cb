// egressd: the daemon. Runs in the foreground, logs to stderr.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cxxopts.hpp>
#include <iostream>
#include <optional>
#include <string>

#include "userspace/daemon/daemon.h"

namespace {

constexpr int64_t kMaxIdleTimeoutSeconds = 7 * 24 * 3600;

// 1 to kMaxIdleTimeoutSeconds, digits only (from_chars takes no '+' or spaces;
// a '-' gives a value below 1).
std::optional<std::chrono::seconds> ParseIdleTimeout(const std::string& text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 1 ||
      value > kMaxIdleTimeoutSeconds) {
    return std::nullopt;
  }
  return std::chrono::seconds(value);
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("egressd", "egressd: kernel-enforced egress control for sandboxes (root)");
  egressd::daemon::DaemonOptions o;
  // clang-format off
  cli.add_options()
      ("socket", "control API unix socket", cxxopts::value<std::string>()->default_value(o.socket_path))
      ("state-dir", "state directory (attached sandboxes)", cxxopts::value<std::string>()->default_value(o.state_dir))
      ("bpffs", "where BPF maps and links are pinned", cxxopts::value<std::string>()->default_value(o.bpffs))
      ("policy-dir", "directory of NAME.yaml policies", cxxopts::value<std::string>()->default_value(o.policy_dir))
      ("cgroup-root", "parent of cgroups egressd creates (default <cgroup2 mount>/egressd)", cxxopts::value<std::string>()->default_value(""))
      ("proxy-port", "proxy listener port on 127.0.0.1 and ::1", cxxopts::value<uint16_t>()->default_value("15001"))
      ("dns-upstream", "upstream resolver IP[:PORT] (default: first nameserver in /etc/resolv.conf)", cxxopts::value<std::string>()->default_value(""))
      ("workers", "proxy worker threads (default: one per CPU)", cxxopts::value<int>()->default_value("0"))
      ("idle-timeout", "seconds without a byte either way after which a proxied connection is closed", cxxopts::value<std::string>()->default_value("300"))
      ("log-level", "trace, debug, info, warn, error", cxxopts::value<std::string>()->default_value("info"))
      ("h,help", "show this help");
  // clang-format on
  try {
    auto args = cli.parse(argc, argv);
    if (args.count("help")) {
      std::cout << cli.help() << std::endl;
      return 0;
    }
    if (!args.unmatched().empty()) {
      std::cerr << "egressd: unexpected argument " << args.unmatched()[0] << "\n";
      return 2;
    }
    o.socket_path = args["socket"].as<std::string>();
    o.state_dir = args["state-dir"].as<std::string>();
    o.bpffs = args["bpffs"].as<std::string>();
    o.policy_dir = args["policy-dir"].as<std::string>();
    o.cgroup_root = args["cgroup-root"].as<std::string>();
    o.proxy_port = args["proxy-port"].as<uint16_t>();
    o.dns_upstream = args["dns-upstream"].as<std::string>();
    o.workers = args["workers"].as<int>();
    auto idle = ParseIdleTimeout(args["idle-timeout"].as<std::string>());
    if (!idle) {
      std::cerr << "egressd: --idle-timeout must be a whole number of seconds from 1 to "
                << kMaxIdleTimeoutSeconds << ", not \"" << args["idle-timeout"].as<std::string>()
                << "\"\n";
      return 2;
    }
    o.idle_timeout = *idle;
    auto level = spdlog::level::from_str(args["log-level"].as<std::string>());
    if (level == spdlog::level::off && args["log-level"].as<std::string>() != "off") {
      std::cerr << "egressd: unknown --log-level " << args["log-level"].as<std::string>() << "\n";
      return 2;
    }
    spdlog::set_default_logger(spdlog::stderr_color_mt("egressd"));
    spdlog::set_level(level);
  } catch (const std::exception& e) {
    std::cerr << "egressd: " << e.what() << "\n";
    return 2;
  }

  // Signals are taken synchronously by sigwait below; every thread inherits
  // the mask. SIGPIPE is ignored: sends use MSG_NOSIGNAL, writes get EPIPE.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  egressd::daemon::Daemon daemon(o);
  egressd::Status st = daemon.Start();
  if (!st.ok()) {
    spdlog::error("egressd: {}", st.ToString());
    daemon.Stop();
    return 1;
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  spdlog::info("egressd: signal {}, stopping (sandboxes stay attached and fail closed)", sig);
  daemon.Stop();
  return 0;
}
