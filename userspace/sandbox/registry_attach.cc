// Attach (a new sandbox, or a policy switch of an attached one), detach,
// and the reaping of `egressctl run` sandboxes whose owner died: BPF maps
// and rules written in an order that never leaves a sandbox unenforced,
// listeners opened in its namespace, sockets opened before the attach swept.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "policy/bpf_lowering.h"
#include "policy/cidr.h"
#include "userspace/common/scope_exit.h"
#include "userspace/kernel/cgroup.h"
#include "userspace/kernel/netns.h"
#include "userspace/sandbox/ended_instances.h"
#include "userspace/sandbox/observations_file.h"
#include "userspace/sandbox/registry.h"
#include "userspace/sandbox/state_file.h"

namespace egressd::sandbox {
namespace {

constexpr int kKillTimeoutMs = 5000;

// Field 22 of /proc/PID/stat (start time in clock ticks), 0 when the process is gone.
uint64_t ProcessStartTime(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  size_t end = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (end == std::string::npos) return 0;
  std::istringstream fields(stat.substr(end + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  return 0;
}

// Packet sockets (AF_PACKET) reach no cgroup hook: a process that may use
// them can send raw frames past egressd on any interface its namespace has.
std::vector<std::string> RawPacketWarnings(const std::string& cgroup) {
  constexpr uint64_t kNetRaw = uint64_t{1} << 13;  // CAP_NET_RAW
  std::vector<int> able;
  for (int pid : kernel::CgroupProcesses(cgroup)) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("CapBnd:", 0) == 0 && (std::strtoull(line.c_str() + 7, nullptr, 16) & kNetRaw))
        able.push_back(pid);
  }
  if (able.empty()) return {};
  return {fmt::format(
      "{} process(es) of {} (pid {}{}) may use CAP_NET_RAW: packet sockets are not seen by "
      "cgroup hooks and can send past egressd; run them without it (docker run --cap-drop "
      "NET_RAW)",
      able.size(), cgroup, able[0], able.size() > 1 ? ", ..." : "")};
}

// Whether `spec` ("host" or a path) names the namespace `sb` is in.
StatusOr<bool> SameNetns(const SandboxInfo& sb, const std::string& spec) {
  if (spec == "host") return sb.netns.empty();
  auto asked = kernel::OpenNetns(spec);
  if (!asked.ok()) return asked.status();
  if (sb.netns.empty()) return kernel::IsOwnNetns(asked->get());
  auto pinned = kernel::OpenNetns(sb.netns);
  if (!pinned.ok()) return pinned.status();
  struct stat a {};
  struct stat b {};
  if (fstat(asked->get(), &a) != 0 || fstat(pinned->get(), &b) != 0)
    return EGRESSD_ERROR("comparing network namespaces: {}", strerror(errno));
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Instance bindings that name handlers a (new) policy does not define, or
// miss its parameters: the requests they cover are refused.
std::vector<std::string> BindingProblems(const policy::CompiledPolicy& policy) {
  std::vector<std::string> problems;
  const auto& rules = policy.instance_rules();
  auto check = [&](const policy::HandlerBinding& binding, const std::string& where) {
    std::string why = policy::CheckBinding(policy.policy().handlers, binding);
    if (!why.empty())
      problems.push_back(where + " binding of handler \"" + binding.handler + "\" under policy \"" +
                         policy.name() + "\": " + why + "; the requests it covers are refused");
  };
  for (const auto& b : rules.by_host) check(b.binding, "instance by_host \"" + b.host + "\"");
  if (rules.catch_all) check(*rules.catch_all, "instance catch_all");
  return problems;
}

bool InAuditMode(const SandboxInfo& sb) {
  return sb.policy && sb.policy->policy().mode == policy::PolicyMode::kAudit;
}

}  // namespace

Status Registry::WriteRules(const policy::Policy& policy, uint32_t set_id) {
  for (const auto& [key, value] : policy::LowerDenyCidrs(policy, set_id)) {
    Status st = bpf_->PutCidrRule(key, value);
    if (!st.ok()) {
      DeleteRules(policy, set_id);
      return st;
    }
  }
  return {};
}

void Registry::DeleteRules(const policy::Policy& policy, uint32_t set_id) {
  for (const auto& [key, value] : policy::LowerDenyCidrs(policy, set_id)) {
    Status st = bpf_->DeleteCidrRule(key);
    if (!st.ok()) spdlog::warn("registry: {}", st.ToString());
  }
}

Status Registry::WriteConfig(const SandboxInfo& sb, const policy::Policy& policy) {
  egressd_sandbox_config config{};
  config.sandbox_id = sb.id;
  config.policy_set_id = sb.policy_set_id;
  config.flags = 0;
  // In a namespace of its own, the sandbox's loopback is its own business.
  if (!sb.netns.empty()) config.flags |= EGRESSD_SANDBOX_LOOPBACK_LOCAL;
  if (policy.mode == policy::PolicyMode::kAudit) config.flags |= EGRESSD_SANDBOX_AUDIT;
  config.proxy_port_host = sb.proxy_port;
  config.dns_port_host = sb.dns_port;
  config.netns_cookie = sb.netns_cookie;
  return bpf_->WriteConfig(sb.cgroup_id, config);
}

StatusOr<std::string> Registry::SnapshotPolicyFile(const std::string& file, uint64_t cgroup_id) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return EGRESSD_ERROR("{}: cannot read the policy file", file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr size_t kMaxPolicyBytes = 1 << 20;
  if (text.size() > kMaxPolicyBytes) return EGRESSD_ERROR("{}: policy file too large", file);
  std::string dir = options_.state_dir + "/run-policies";
  mkdir(dir.c_str(), 0700);
  std::string path = dir + "/" + std::to_string(cgroup_id) + ".yaml";
  UniqueFd out(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid() ||
      write(out.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return EGRESSD_ERROR("{}: {}", path, strerror(errno));
  return path;
}

// Opens the sandbox's listeners in its namespace (preferring the given ports).
Status Registry::OpenListeners(SandboxInfo& sb, uint16_t want_proxy, uint16_t want_dns,
                               SandboxListeners* out) {
  if (sb.netns.empty()) {
    auto l = OpenSandboxListeners(false, 0, want_dns);
    if (!l.ok()) return l.status();
    *out = std::move(*l);
    sb.proxy_port = options_.proxy_port;
  } else {
    auto ns = kernel::OpenNetns(sb.netns);
    if (!ns.ok()) return ns.status();
    EGRESSD_RETURN_IF_ERROR(kernel::RunInNetns(ns->get(), [&]() -> Status {
      auto l = OpenSandboxListeners(true, want_proxy, want_dns);
      if (!l.ok()) return l.status();
      *out = std::move(*l);
      return {};
    }));
    sb.proxy_port = out->proxy_port;
  }
  sb.dns_port = out->dns_port;
  sb.netns_cookie = out->netns_cookie;
  return {};
}

// Writes the policy's rules under a fresh set id, flips the config, then
// removes the previous set: each step leaves a consistent kernel state.
Status Registry::ApplyPolicy(SandboxInfo& sb,
                             std::shared_ptr<const policy::CompiledPolicy> policy) {
  if (!sb.listening)
    return EGRESSD_ERROR("sandbox {} stays refused, its listeners are not open ({}): detach it",
                         sb.instance, sb.problem);
  uint32_t new_set = next_policy_set_id_++;
  EGRESSD_RETURN_IF_ERROR(WriteRules(policy->policy(), new_set));
  uint32_t old_set = sb.policy_set_id;
  auto old_policy = sb.policy;
  sb.policy_set_id = new_set;
  Status st = WriteConfig(sb, policy->policy());
  if (!st.ok()) {
    sb.policy_set_id = old_set;
    DeleteRules(policy->policy(), new_set);
    return st;
  }
  sb.policy = WithInstanceRules(*policy, sb.rules, sb.instance);
  sb.problem.clear();
  if (old_policy) DeleteRules(old_policy->policy(), old_set);
  return {};
}

StatusOr<AttachResult> Registry::Attach(const AttachRequest& request) {
  std::lock_guard lock(mu_);
  auto cgroup = kernel::ResolveCgroup(request.cgroup, options_.cgroup2_mount);
  if (!cgroup.ok()) return cgroup.status();
  // `egressctl run --policy FILE`: the file may belong to the user whose
  // command runs in the sandbox. The sandbox follows a copy of it as it was.
  PolicySource source = request.source;
  bool snapshot =
      request.transient && source.kind == PolicySource::Kind::kFile && !FindByCgroup(cgroup->path);
  if (snapshot) {
    auto copy = SnapshotPolicyFile(source.value, cgroup->id);
    if (!copy.ok()) return copy.status();
    source.value = *copy;
  }
  // A refused attach, at any step below, leaves no copy behind.
  ScopeExit drop_snapshot([&] {
    if (snapshot) unlink(source.value.c_str());
  });
  // Errors name the user's file, not our copy of it.
  auto policy = LoadPolicySource(source, options_.policy_dir, snapshot ? request.source.value : "");
  if (!policy.ok()) return policy.status();

  if (SandboxInfo* existing = FindByCgroup(cgroup->path)) {
    // Runtime switch: the next connection and the next request follow it.
    // The namespace and ownership stay what the first attach made them.
    if (!request.netns.empty()) {
      auto same = SameNetns(*existing, request.netns);
      if (!same.ok()) return same.status();
      if (!*same)
        return EGRESSD_ERROR(
            "{} is attached already, in {}; detach it first to change its network namespace",
            existing->cgroup,
            existing->netns.empty() ? "the host's network namespace" : existing->netns);
    }
    const bool renamed = !request.instance.empty() && request.instance != existing->instance;
    if (renamed) EGRESSD_RETURN_IF_ERROR(CheckNewInstance(request.instance));
    const bool was_audit = !existing->policy || InAuditMode(*existing);
    EGRESSD_RETURN_IF_ERROR(ApplyPolicy(*existing, *policy));
    existing->source = request.source;
    if (renamed) {
      ca_store_.Rename(existing->instance, request.instance);  // a switch keeps the CA
      existing->instance = request.instance;
      existing->policy = WithInstanceRules(*existing->policy, existing->rules, request.instance);
    }
    Publish();
    Status saved = SaveState();
    if (!saved.ok()) spdlog::error("registry: {}", saved.ToString());
    spdlog::info("sandbox {} ({}) switched to policy {}", existing->instance, existing->cgroup,
                 (*policy)->name());
    AttachResult result{
        *existing,
        true,
        existing->transient ? std::vector<std::string>{} : RawPacketWarnings(existing->cgroup),
        {}};
    for (std::string& problem : BindingProblems(*existing->policy)) {
      spdlog::warn("sandbox {}: {}", existing->instance, problem);
      result.warnings.push_back(std::move(problem));
    }
    // Enforce mode hooks every socket; only audit mode let some pass by.
    if (was_audit && !InAuditMode(*existing))
      result.sockets = kernel::SweepAtAttach(existing->cgroup, existing->netns,
                                             kernel::SweepAction::kClose, &result.warnings);
    return result;
  }

  SandboxInfo sb;
  sb.cgroup = cgroup->path;
  sb.cgroup_id = cgroup->id;
  sb.instance = request.instance.empty() ? cgroup->path.substr(cgroup->path.find_last_of('/') + 1)
                                         : request.instance;
  EGRESSD_RETURN_IF_ERROR(CheckNewInstance(sb.instance));
  sb.id = AllocateId();
  if (sb.id == 0)
    return EGRESSD_ERROR("too many sandboxes (at most {})", EGRESSD_MAX_SANDBOXES - 1);
  sb.generation = next_generation_++;
  sb.source = source;
  sb.counters = std::make_shared<ProxyCounters>();
  sb.observed = std::make_shared<Observations>();
  sb.transient = request.transient;
  if (request.owner_pid > 0) {
    sb.owner_pid = request.owner_pid;
    sb.owner_start_time = ProcessStartTime(request.owner_pid);
    if (sb.owner_start_time == 0)
      return EGRESSD_ERROR("owner process {} is not running", request.owner_pid);
  }

  // Which network namespace: asked for, or the one all its processes share.
  std::string netns_path = request.netns;
  UniqueFd netns;
  if (netns_path.empty()) {
    auto detected = kernel::DetectCgroupNetns(sb.cgroup);
    if (!detected.ok()) return detected.status();
    netns = std::move(detected->fd);
    netns_path = detected->source;
  } else if (netns_path != "host") {
    auto ns = kernel::OpenNetns(netns_path);
    if (!ns.ok()) return ns.status();
    auto own = kernel::IsOwnNetns(ns->get());
    if (!own.ok()) return own.status();
    if (!*own) netns = std::move(*ns);
  }
  if (netns.valid()) {
    // A reference of our own, so the namespace (and our listeners in it)
    // outlives the processes and survives a daemon restart.
    std::string dir = options_.state_dir + "/netns";
    mkdir(dir.c_str(), 0700);
    sb.netns = dir + "/sandbox-" + std::to_string(sb.id);
    kernel::UnpinNetns(sb.netns);  // a leftover of a crash
    EGRESSD_RETURN_IF_ERROR(kernel::PinNetns(netns.get(), sb.netns));
  }
  auto unpin = [&] {
    if (!sb.netns.empty()) kernel::UnpinNetns(sb.netns);
    if (sb.leaves) ca_store_.Remove(sb.instance);
  };
  // A CA of its own, for this attachment only (detach wipes it).
  auto leaves = ca_store_.Create(sb.instance);
  if (!leaves.ok()) {
    unpin();
    return EGRESSD_ERROR("sandbox CA: {}", leaves.status().message());
  }
  sb.leaves = *leaves;
  SandboxListeners listeners;
  Status opened = OpenListeners(sb, 0, 0, &listeners);
  if (!opened.ok()) {
    unpin();
    return EGRESSD_ERROR("sandbox listeners: {}", opened.message());
  }
  sb.listening = true;

  Status reset = bpf_->ResetCounters(sb.id);
  if (!reset.ok()) {
    unpin();
    return reset;
  }
  int fd = open(sb.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    unpin();
    return EGRESSD_ERROR("cannot open cgroup {}: {}", sb.cgroup, strerror(errno));
  }
  Status attached = bpf_->AttachCgroup(fd, sb.id);
  close(fd);
  if (!attached.ok()) {
    unpin();
    return attached;
  }
  // From here the cgroup denies everything until ApplyPolicy writes its config.
  // Its view is published first: a connection the config redirects finds
  // its sandbox, never is refused as unknown (the cgroup may be busy already).
  SandboxInfo& known = sandboxes_[sb.id] = sb;
  known.policy = WithInstanceRules(**policy, sb.rules, sb.instance);
  Publish();
  Status applied = ApplyPolicy(sb, *policy);
  if (!applied.ok()) {
    sandboxes_.erase(sb.id);
    Publish();
    Status st = bpf_->DetachSandbox(sb.id);
    if (!st.ok()) spdlog::error("registry: rollback: {}", st.ToString());
    unpin();
    return applied;
  }
  // Connections redirected before the workers take the listeners wait in
  // their backlog: nothing is refused for being early.
  if (sink_) sink_->AddSandboxListeners(sb.id, std::move(listeners));
  drop_snapshot.Release();  // the sandbox follows it now
  sandboxes_[sb.id] = sb;
  Publish();
  Status saved = SaveState();
  if (!saved.ok()) spdlog::error("registry: {}", saved.ToString());
  spdlog::info("sandbox {} attached: cgroup {} policy {} (id {}, {}, proxy port {}, dns port {})",
               sb.instance, sb.cgroup, sb.policy->name(), sb.id,
               sb.netns.empty() ? "host network namespace" : "network namespace " + netns_path,
               sb.proxy_port, sb.dns_port);
  // `egressctl run` drops CAP_NET_RAW itself, once the policy is attached.
  AttachResult result{
      sb, false, sb.transient ? std::vector<std::string>{} : RawPacketWarnings(sb.cgroup), {}};
  result.sockets = kernel::SweepAtAttach(
      sb.cgroup, sb.netns,
      InAuditMode(sb) ? kernel::SweepAction::kCountOnly : kernel::SweepAction::kClose,
      &result.warnings);
  for (const auto& w : result.warnings) spdlog::warn("sandbox {}: {}", sb.instance, w);
  return result;
}

// Kills a transient sandbox's processes while it is still enforced, then
// takes the kernel programs, listeners and namespace pin away.
Status Registry::DetachLocked(SandboxInfo& sb) {
  if (sb.transient) {
    Status killed = kernel::KillCgroup(sb.cgroup, kKillTimeoutMs);
    if (!killed.ok() && access(sb.cgroup.c_str(), F_OK) == 0) return killed;
  }
  auto final_counters = bpf_->ReadCounters(sb.id);  // before its programs go
  Status st = bpf_->DetachSandbox(sb.id);
  if (!st.ok()) return st;
  if (options_.ended)
    options_.ended->Add({sb.id, sb.instance, sb.cgroup, sb.policy ? sb.policy->name() : "",
                         final_counters.ok() ? *final_counters : egressd_kernel_counters{},
                         sb.counters});
  if (sb.policy) DeleteRules(sb.policy->policy(), sb.policy_set_id);
  if (sink_) sink_->RemoveSandboxListeners(sb.id);
  if (!sb.netns.empty()) kernel::UnpinNetns(sb.netns);
  ca_store_.Remove(sb.instance);
  if (sb.source.kind == PolicySource::Kind::kFile &&
      sb.source.value.rfind(options_.state_dir + "/run-policies/", 0) == 0)
    unlink(sb.source.value.c_str());
  if (sb.transient) {
    Status removed = kernel::RemoveCgroupTree(sb.cgroup);
    if (!removed.ok()) spdlog::warn("sandbox {}: {}", sb.instance, removed.ToString());
  }
  const bool audit = InAuditMode(sb);
  if (audit) {
    RememberFinished({sb.instance, sb.policy, sb.observed});
  }
  spdlog::info("sandbox {} detached: cgroup {}", sb.instance, sb.cgroup);
  sandboxes_.erase(sb.id);  // `sb` is gone from here
  if (audit) {
    Status saved = SaveObservationsLocked();
    if (!saved.ok()) spdlog::warn("registry: {}", saved.ToString());
  }
  Publish();
  return SaveState();
}

Status Registry::Detach(const std::string& cgroup_or_instance) {
  std::lock_guard lock(mu_);
  // The cgroup may be gone already (the container ended): match by path too.
  std::string path = cgroup_or_instance;
  auto cgroup = kernel::ResolveCgroup(cgroup_or_instance, options_.cgroup2_mount);
  if (cgroup.ok()) {
    path = cgroup->path;
  } else if (!cgroup_or_instance.empty() && cgroup_or_instance[0] != '/') {
    path = options_.cgroup2_mount + "/" + cgroup_or_instance;
  }
  SandboxInfo* sb = FindByCgroup(path);
  if (!sb) {
    for (auto& [id, other] : sandboxes_)
      if (other.instance == cgroup_or_instance) sb = &other;
  }
  if (!sb) return EGRESSD_ERROR("{} is not attached", cgroup_or_instance);
  return DetachLocked(*sb);
}

size_t Registry::ReapOrphans() {
  std::lock_guard lock(mu_);
  std::vector<uint32_t> orphans;
  for (const auto& [id, sb] : sandboxes_)
    if (sb.owner_pid > 0 && ProcessStartTime(sb.owner_pid) != sb.owner_start_time)
      orphans.push_back(id);
  for (uint32_t id : orphans) {
    SandboxInfo& sb = sandboxes_[id];
    spdlog::warn("sandbox {}: its owner (pid {}) is gone; removing it", sb.instance, sb.owner_pid);
    Status st = DetachLocked(sb);
    if (!st.ok()) spdlog::error("sandbox {}: {}", sb.instance, st.ToString());
  }
  return orphans.size();
}

}  // namespace egressd::sandbox
