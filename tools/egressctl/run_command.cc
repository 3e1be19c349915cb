#include "tools/egressctl/run_command.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "tools/egressctl/ca_trust.h"
#include "tools/egressctl/control_client.h"

namespace egressctl {
namespace {

using nlohmann::json;

constexpr int kSetupFailed = 125;

struct User {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name, home;
  std::vector<gid_t> groups;
};

// What the command must not see or change, in a mount namespace of its own.
struct Hidden {
  std::string cgroup2_mount;  // remounted read-only: the command cannot leave its cgroup
  std::string socket;         // egressd's control socket: /dev/null over it
  // egressd's state (audit log, namespace pins, CA keys), policies, pinned
  // BPF objects and secrets (root-only files, which a command run as root
  // could otherwise read): an empty tmpfs over each (skipped when not on this host, as
  // with a daemon in a container of its own).
  std::vector<std::string> dirs;
};

std::string FindCgroup2Mount() {
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, path, type, rest;
  while (mounts >> dev >> path >> type && std::getline(mounts, rest))
    if (type == "cgroup2") return path;
  return "";
}

// In the child, while it still has CAP_SYS_ADMIN (dropped right after, so
// none of this can be undone).
bool HideDaemon(const Hidden& hidden, std::string* stage) {
  *stage = "making mounts private";
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
  *stage = "remounting " + hidden.cgroup2_mount + " read-only";
  if (mount(hidden.cgroup2_mount.c_str(), hidden.cgroup2_mount.c_str(), nullptr, MS_BIND,
            nullptr) != 0 ||
      mount(nullptr, hidden.cgroup2_mount.c_str(), nullptr,
            MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return false;
  // A /proc of the command's own PID namespace: no process outside shows.
  *stage = "mounting /proc";
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return false;
  *stage = "remounting /proc/sys read-only";
  if (mount("/proc/sys", "/proc/sys", nullptr, MS_BIND, nullptr) != 0 ||
      mount(nullptr, "/proc/sys", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0)
    return false;
  *stage = "hiding " + hidden.socket;
  if (access(hidden.socket.c_str(), F_OK) == 0 &&
      mount("/dev/null", hidden.socket.c_str(), nullptr, MS_BIND, nullptr) != 0)
    return false;
  for (const std::string& dir : hidden.dirs) {
    if (dir.empty() || access(dir.c_str(), F_OK) != 0) continue;
    // Our copies of other sandboxes' namespace pins would keep those
    // namespaces alive as long as this command runs: drop them first.
    std::error_code ec;
    for (const auto& pin : std::filesystem::directory_iterator(dir + "/netns", ec))
      umount2(pin.path().c_str(), MNT_DETACH);
    *stage = "hiding " + dir;
    if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,mode=700") != 0)
      return false;
  }
  // A cgroup namespace rooted at the sandbox: no cgroup outside it can be
  // named, so none can be moved into, whatever cgroup2 mount is writable.
  *stage = "cgroup namespace";
  if (unshare(CLONE_NEWCGROUP) != 0) return false;
  return true;
}

int SetupError(const std::string& message) {
  std::cerr << "egressctl: " << message << "\n";
  return kSetupFailed;
}

bool LookUpUser(const std::string& spec, User* user, std::string* error) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  bool numeric = !spec.empty() && spec.find_first_not_of("0123456789") == std::string::npos;
  int rc = numeric ? getpwuid_r(static_cast<uid_t>(std::stoul(spec)), &pw, buf.data(), buf.size(),
                                &found)
                   : getpwnam_r(spec.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0 || !found) {
    *error = "--user " + spec + ": no such user";
    return false;
  }
  user->uid = pw.pw_uid;
  user->gid = pw.pw_gid;
  user->name = pw.pw_name;
  user->home = pw.pw_dir;
  int n = 64;
  user->groups.resize(static_cast<size_t>(n));
  if (getgrouplist(pw.pw_name, pw.pw_gid, user->groups.data(), &n) < 0) {
    user->groups.resize(static_cast<size_t>(n));
    getgrouplist(pw.pw_name, pw.pw_gid, user->groups.data(), &n);
  }
  user->groups.resize(static_cast<size_t>(n));
  return true;
}

std::string RandomInstance() {
  unsigned char bytes[4] = {};
  std::ifstream("/dev/urandom", std::ios::binary).read(reinterpret_cast<char*>(bytes), 4);
  char out[16];
  snprintf(out, sizeof(out), "run-%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return out;
}

// What a command run as root keeps: Docker's default set without CAP_NET_RAW.
// Gone with the rest: CAP_NET_ADMIN and CAP_NET_RAW (the network), CAP_SYS_ADMIN
// (setns into the host's namespace, mounts, BPF), CAP_SYS_PTRACE, CAP_BPF...
constexpr int kKeptCapabilities[] = {
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FSETID,     CAP_FOWNER,  CAP_MKNOD,
    CAP_SETGID, CAP_SETUID,       CAP_SETFCAP,    CAP_SETPCAP, CAP_NET_BIND_SERVICE,
    CAP_KILL,   CAP_SYS_CHROOT,   CAP_AUDIT_WRITE};

int LastCapability() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int last = 40;
  in >> last;
  return last;
}

// Limits every capability set of this process (bounding, ambient, effective,
// permitted, inheritable) to kKeptCapabilities, for the command and anything
// it executes.
bool LimitCapabilities() {
  uint64_t keep = 0;
  for (int cap : kKeptCapabilities) keep |= uint64_t{1} << cap;
  for (int cap = 0; cap <= LastCapability(); ++cap)
    if (!(keep & (uint64_t{1} << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
        errno != EINVAL)
      return false;
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  for (int i = 0; i < 2; ++i) {
    auto mask = static_cast<uint32_t>(keep >> (32 * i));
    data[i].effective &= mask;
    data[i].permitted &= mask;
    data[i].inheritable &= mask;
  }
  return syscall(SYS_capset, &header, data) == 0;
}

// Signals the sandbox's init passes on to the command when they are sent to
// it (by egressctl, which forwards SIGINT/SIGTERM/SIGHUP, or anyone else).
constexpr int kForwardedSignals[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

void IgnoreSignal(int) {}

// The command's process, forked by init: drops to the user and becomes the
// command. On failure the error goes through `error_fd` (close-on-exec:
// silent on success) and the exit code says which kind.
[[noreturn]] void CommandMain(const RunOptions& options, const User* user, int error_fd,
                              const sigset_t& original_mask) {
  auto die = [&](const char* stage, int code) {
    int err = errno;
    std::string message = std::string(stage) + ": " + strerror(err);
    (void)!write(error_fd, message.data(), message.size());
    _exit(code);
  };
  if (user) {
    if (setgroups(user->groups.size(), user->groups.data()) != 0) die("setgroups", kSetupFailed);
    if (setgid(user->gid) != 0) die("setgid", kSetupFailed);
    if (setuid(user->uid) != 0) die("setuid", kSetupFailed);
    setenv("HOME", user->home.c_str(), 1);
    setenv("USER", user->name.c_str(), 1);
    setenv("LOGNAME", user->name.c_str(), 1);
  }
  for (int sig : kForwardedSignals) signal(sig, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_SETMASK, &original_mask, nullptr);
  std::vector<char*> argv;
  for (const auto& arg : options.command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  die(options.command[0].c_str(), errno == ENOENT ? 127 : 126);
  _exit(126);
}

// PID 1 of the sandbox's PID namespace, once the command runs: passes the
// signals sent to it on to the command, reaps every orphan, and returns the
// command's status as an exit code (128+N when it died of signal N: a signal
// re-raised in PID 1 would not kill it). When it returns, the kernel kills
// whatever else is left in the namespace.
int InitLoop(pid_t command, const sigset_t& waited) {
  for (;;) {
    siginfo_t info{};
    int sig = sigwaitinfo(&waited, &info);
    if (sig < 0) continue;  // EINTR
    if (sig != SIGCHLD) {
      // The terminal's own signals reach the command directly (same process group).
      if (info.si_code == SI_USER || info.si_code == SI_QUEUE) kill(command, sig);
      continue;
    }
    int wstatus = 0;
    for (pid_t r; (r = waitpid(-1, &wstatus, WNOHANG)) > 0;)
      if (r == command)
        return WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
  }
}

// The go-ahead egressctl sends the child once the policy is attached: "g",
// then the sandbox CA's certificate (PEM) when the command must trust it.
constexpr char kGo = 'g';

// The go-ahead, read to its end; nullopt when egressctl gave up (the attach
// failed) and closed the pipe without it.
std::optional<std::string> ReadGoAhead(int go_fd) {
  std::string message;
  char buf[4096];
  ssize_t n;
  while ((n = read(go_fd, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    message.append(buf, static_cast<size_t>(n));
  }
  if (message.empty() || message[0] != kGo) return std::nullopt;
  return message.substr(1);
}

// The cloned child, PID 1 of a new PID namespace: waits for the go-ahead,
// hides the daemon, trusts the sandbox CA if it was sent one, drops
// capabilities, forks the command and stays as its init. Setup errors go
// through `error_fd`, like the command's.
[[noreturn]] void ChildMain(const RunOptions& options, const User* user, const Hidden& hidden,
                            int go_fd, int error_fd, const sigset_t& original_mask) {
  auto die = [&](const char* stage, int code) {
    int err = errno;
    std::string message = std::string(stage) + ": " + strerror(err);
    (void)!write(error_fd, message.data(), message.size());
    _exit(code);
  };
  std::optional<std::string> ca_pem = ReadGoAhead(go_fd);
  if (!ca_pem) _exit(kSetupFailed);
  close(go_fd);
  std::string stage;
  if (!HideDaemon(hidden, &stage)) die(stage.c_str(), kSetupFailed);
  if (!ca_pem->empty() && !TrustSandboxCa(*ca_pem, &stage))
    die(("trusting the sandbox CA: " + stage).c_str(), kSetupFailed);
  if (!LimitCapabilities()) die("limiting capabilities", kSetupFailed);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("no_new_privs", kSetupFailed);
  // PID 1 gets only the signals it has a handler for; they stay blocked and
  // are taken by sigwaitinfo.
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  for (int sig : kForwardedSignals) {
    signal(sig, IgnoreSignal);
    sigaddset(&waited, sig);
  }
  sigprocmask(SIG_BLOCK, &waited, nullptr);
  pid_t command = fork();
  if (command < 0) die("fork", kSetupFailed);
  if (command == 0) CommandMain(options, user, error_fd, original_mask);
  close(error_fd);
  // Init holds none of the command's files open (a pipe it closes ends).
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd <= 2 && null >= 0; ++fd) dup2(null, fd);
  _exit(InitLoop(command, waited));
}

pid_t CloneIntoCgroup(int cgroup_fd, bool new_netns) {
  clone_args args{};
  args.flags = CLONE_INTO_CGROUP | CLONE_NEWNS | CLONE_NEWPID | (new_netns ? CLONE_NEWNET : 0);
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(cgroup_fd);
  return static_cast<pid_t>(syscall(SYS_clone3, &args, sizeof(args)));
}

}  // namespace

int RunCommand(const RunOptions& options) {
  // Usage errors exit 2, as everywhere in egressctl.
  auto usage_error = [](const std::string& message) {
    std::cerr << "egressctl: " << message << "\n";
    return 2;
  };
  if (options.command.empty())
    return usage_error("run: no command given (egressctl run ... -- CMD)");
  if (options.netns != "new" && options.netns != "host")
    return usage_error("run: --netns must be \"new\" or \"host\", not \"" + options.netns + "\"");
  if (options.policy.empty()) return usage_error("run: --policy NAME|FILE is required");
  User user;
  std::string error;
  if (!options.user.empty() && !LookUpUser(options.user, &user, &error)) return SetupError(error);

  auto status = TryCall(options.socket, {{"cmd", "status"}}, &error);
  if (!status) return SetupError(error);
  std::string root = status->value("cgroup_root", std::string());
  if (root.empty()) return SetupError("egressd did not say where its cgroups go (cgroup_root)");
  Hidden hidden;
  hidden.cgroup2_mount = FindCgroup2Mount();
  if (hidden.cgroup2_mount.empty()) return SetupError("no cgroup2 mount in /proc/self/mounts");
  hidden.socket = options.socket;
  for (const char* key : {"state_dir", "policy_dir", "bpffs", "secrets_dir"})
    hidden.dirs.push_back(status->value(key, std::string()));
  std::string instance = options.instance.empty() ? RandomInstance() : options.instance;
  if (instance.find('/') != std::string::npos || instance == "." || instance == "..")
    return SetupError("run: --instance must not contain '/'");
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return SetupError("cannot create " + root + ": " + ec.message());
  std::string cgroup = root + "/" + instance;
  if (mkdir(cgroup.c_str(), 0755) != 0)
    return SetupError(
        "cannot create cgroup " + cgroup + ": " + strerror(errno) +
        (errno == EEXIST ? " (is instance \"" + instance + "\" running already?)" : ""));
  int cgroup_fd = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup_fd < 0) {
    int err = errno;
    rmdir(cgroup.c_str());
    return SetupError("cannot open " + cgroup + ": " + strerror(err));
  }

  // Signals are taken synchronously below; the child restores the mask.
  sigset_t handled, original;
  sigemptyset(&handled);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&handled, sig);
  sigprocmask(SIG_BLOCK, &handled, &original);

  int go[2], errors[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(errors, O_CLOEXEC) != 0) {
    rmdir(cgroup.c_str());
    return SetupError(std::string("pipe: ") + strerror(errno));
  }
  pid_t child = CloneIntoCgroup(cgroup_fd, options.netns == "new");
  if (child == 0) {
    close(go[1]);
    close(errors[0]);
    ChildMain(options, options.user.empty() ? nullptr : &user, hidden, go[0], errors[1], original);
  }
  int clone_errno = errno;
  close(cgroup_fd);
  close(go[0]);
  close(errors[1]);
  if (child < 0) {
    rmdir(cgroup.c_str());
    return SetupError(std::string("cannot start the command in ") + cgroup +
                      ": clone3: " + strerror(clone_errno));
  }

  json attach = {{"cmd", "attach"},
                 {"cgroup", cgroup},
                 {"instance", instance},
                 {"netns", options.netns == "new" ? "/proc/" + std::to_string(child) + "/ns/net"
                                                  : std::string("host")},
                 {"transient", true}};  // owned by this process: the daemon reads our pid
  attach[options.policy_is_file ? "policy_file" : "policy"] = options.policy;
  auto attached = TryCall(options.socket, attach, &error);
  if (!attached) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    rmdir(cgroup.c_str());
    return SetupError("cannot attach the policy: " + error);
  }
  // Enforced from here. A policy that intercepts TLS needs its CA trusted
  // inside: without it, the command would run with TLS that cannot work.
  std::string go_ahead(1, kGo);
  if (attached->value("intercept", false)) {
    auto ca = TryCall(options.socket, {{"cmd", "ca"}, {"instance", instance}}, &error);
    std::string pem = ca ? ca->value("certificate", std::string()) : std::string();
    if (!ca || !IsOneCertificatePem(pem)) {
      std::string why = ca ? "egressd's answer is not one PEM certificate" : error;
      kill(child, SIGKILL);
      waitpid(child, nullptr, 0);
      if (!TryCall(options.socket, {{"cmd", "detach"}, {"cgroup", cgroup}}, &error))
        std::cerr << "egressctl: detaching " << cgroup << ": " << error << "\n";
      return SetupError("cannot get the sandbox's CA to trust it (its policy intercepts TLS): " +
                        why);
    }
    go_ahead += pem;
  }
  // Let the child go on (the certificate is far below a pipe's capacity).
  (void)!write(go[1], go_ahead.data(), go_ahead.size());
  close(go[1]);
  std::string exec_error;
  char buf[512];
  for (ssize_t n; (n = read(errors[0], buf, sizeof(buf))) > 0;)
    exec_error.append(buf, static_cast<size_t>(n));
  close(errors[0]);
  if (!exec_error.empty()) std::cerr << "egressctl: cannot run the command: " << exec_error << "\n";

  int exit_code = kSetupFailed;
  for (bool done = false; !done;) {
    siginfo_t info{};
    int sig = sigwaitinfo(&handled, &info);
    if (sig < 0) continue;  // EINTR
    if (sig != SIGCHLD) {
      // Signals from the terminal reach the command by themselves (same
      // process group); only those sent to egressctl alone are forwarded.
      if (info.si_code == SI_USER || info.si_code == SI_QUEUE) kill(child, sig);
      continue;
    }
    int wstatus = 0;
    pid_t r = waitpid(child, &wstatus, WNOHANG);
    if (r == child) {
      done = true;
      exit_code = WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
    }
  }

  // The daemon kills what the command left behind and removes the cgroup.
  if (!TryCall(options.socket, {{"cmd", "detach"}, {"cgroup", cgroup}}, &error))
    std::cerr << "egressctl: detaching " << cgroup << ": " << error << "\n";
  return exit_code;
}

}  // namespace egressctl
