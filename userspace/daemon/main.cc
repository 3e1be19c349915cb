// egressd: the daemon. Runs in the foreground, logs to stderr.
//
// Signals: SIGHUP re-reads every sandbox's policy (`egressctl policy reload`);
// SIGTERM and SIGINT stop the daemon (the sandboxes stay attached and fail
// closed until it runs again); SIGPIPE is ignored. Every exit says why.
// Exit status: 0 stopped by a signal, 1 could not start, 2 bad flags.
// Under systemd (Type=notify) it reports READY, RELOADING and STOPPING
// (service_notify.h).
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <iostream>

#include "userspace/common/version.h"
#include "userspace/daemon/daemon.h"
#include "userspace/daemon/fd_limit.h"
#include "userspace/daemon/flags.h"
#include "userspace/daemon/service_notify.h"

int main(int argc, char** argv) {
  auto flags = egressd::daemon::ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "egressd: " << flags.status().message() << " (egressd --help lists the flags)\n";
    return 2;
  }
  if (flags->help) {
    std::cout << flags->help_text << std::endl;
    return 0;
  }
  if (flags->version) {
    std::cout << "egressd " << egressd::kVersion << std::endl;
    return 0;
  }
  spdlog::set_default_logger(spdlog::stderr_color_mt("egressd"));
  spdlog::set_level(flags->log_level);
  egressd::daemon::RaiseFdLimit();

  // Signals are taken synchronously by sigwait below; every thread inherits
  // the mask. SIGPIPE is ignored: sends use MSG_NOSIGNAL, writes get EPIPE.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  egressd::daemon::Daemon daemon(flags->options);
  egressd::Status st = daemon.Start();
  if (!st.ok()) {
    spdlog::error("egressd: not started: {}", st.ToString());
    egressd::daemon::NotifyStopping();
    daemon.Stop();
    spdlog::error("egressd: exiting with status 1 (could not start)");
    return 1;
  }
  // Daemon::Start logged "egressd ready": the control socket answers, the
  // maps are pinned and the recorded sandboxes re-adopted.
  const std::string ready_status =
      std::string("egressd ") + egressd::kVersion + " ready: socket " + flags->options.socket_path;
  egressd::daemon::NotifyReady(ready_status);
  for (;;) {
    int sig = 0;
    if (sigwait(&sigs, &sig) != 0) continue;
    if (sig == SIGHUP) {
      spdlog::info("egressd: SIGHUP: reloading every sandbox's policy");
      egressd::daemon::NotifyReloading();
      (void)daemon.ReloadPolicies();  // logged either way; the daemon goes on
      egressd::daemon::NotifyReady(ready_status);
      continue;
    }
    spdlog::info(
        "egressd: {} received, stopping (sandboxes stay attached and fail closed until egressd "
        "runs again)",
        sigabbrev_np(sig) ? std::string("SIG") + sigabbrev_np(sig) : std::to_string(sig));
    break;
  }
  egressd::daemon::NotifyStopping();
  daemon.Stop();
  spdlog::info("egressd: stopped");
  return 0;
}
