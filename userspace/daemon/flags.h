// egressd's command line: parsed and checked before anything starts, so a bad
// flag is refused at once (exit status 2) with the flag's name, never late.
// One small check per flag, each returning an error that names the flag.
#pragma once

#include <spdlog/common.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "userspace/common/status.h"
#include "userspace/daemon/daemon.h"

namespace egressd::daemon {

struct Flags {
  DaemonOptions options;
  spdlog::level::level_enum log_level = spdlog::level::info;
  bool help = false;  // --help: print `help_text` and exit 0
  std::string help_text;
  bool version = false;  // --version: print "egressd X.Y.Z" and exit 0
};

// Parses and checks every flag. An error means exit status 2.
StatusOr<Flags> ParseFlags(int argc, char** argv);

// 0 is allowed: the kernel picks the port.
StatusOr<uint16_t> ParseProxyPort(const std::string& text);
// A timeout flag: 1 to `max_seconds` whole seconds; errors name `flag`.
StatusOr<std::chrono::seconds> ParseSeconds(const char* flag, const std::string& text,
                                            int64_t max_seconds);
// --idle-timeout, --header-timeout, --connect-timeout, --response-timeout: up to a week.
inline constexpr int64_t kMaxProxyTimeoutSeconds = 7 * 24 * 3600;
inline constexpr int64_t kMaxDnsTimeoutSeconds = 60;
StatusOr<size_t> ParseAuditLogMaxBytes(const std::string& text);
inline constexpr int64_t kMaxConnectionsPerSandbox = 1 << 20;
StatusOr<uint64_t> ParseMaxConnectionsPerSandbox(const std::string& text);
// "" (not given): one worker per CPU, returned as 0.
StatusOr<int> ParseWorkers(const std::string& text);
StatusOr<spdlog::level::level_enum> ParseLogLevel(const std::string& text);
Status CheckPolicyDir(const std::string& dir);
Status CheckStateDir(const std::string& dir);
// Need not exist (created 0700 at start); if it does, a directory.
Status CheckSecretsDir(const std::string& dir);
Status CheckSocketPath(const std::string& path);
Status CheckBpffsDir(const std::string& dir);
Status CheckCgroupRoot(const std::string& dir);
Status CheckDnsUpstream(const std::string& text);

}  // namespace egressd::daemon
