#include "userspace/kernel/bpf_programs.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "egressd.skel.h"

namespace egressd::kernel {
namespace {

struct ProgramLink {
  const char* name;  // pinned file name under links/<id>/
  bpf_program* (*get)(egressd_bpf*);
};

// Every program attached to a sandbox cgroup, in attach order: sock_create
// and the sockops/connect hooks first, so no socket slips through between.
const ProgramLink kPrograms[] = {
    {"sock_create", [](egressd_bpf* s) { return s->progs.egressd_sock_create; }},
    {"sockops", [](egressd_bpf* s) { return s->progs.egressd_sockops; }},
    {"connect4", [](egressd_bpf* s) { return s->progs.egressd_connect4; }},
    {"connect6", [](egressd_bpf* s) { return s->progs.egressd_connect6; }},
    {"sendmsg4", [](egressd_bpf* s) { return s->progs.egressd_sendmsg4; }},
    {"sendmsg6", [](egressd_bpf* s) { return s->progs.egressd_sendmsg6; }},
    {"recvmsg4", [](egressd_bpf* s) { return s->progs.egressd_recvmsg4; }},
    {"recvmsg6", [](egressd_bpf* s) { return s->progs.egressd_recvmsg6; }},
    {"getpeername4", [](egressd_bpf* s) { return s->progs.egressd_getpeername4; }},
    {"getpeername6", [](egressd_bpf* s) { return s->progs.egressd_getpeername6; }},
};

Status EnsureDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return {};
  return EGRESSD_ERROR("cannot create {}: {}", path, strerror(errno));
}

// The pin directory must live on bpffs. If /sys/fs/bpf itself has no bpffs
// mounted (minimal hosts), mount one there; anywhere else is the user's call.
Status EnsureBpffs(const std::string& pin_dir) {
  std::filesystem::path parent = std::filesystem::path(pin_dir).parent_path();
  struct statfs fs {};
  if (statfs(parent.c_str(), &fs) != 0)
    return EGRESSD_ERROR("bpffs directory {}: {}", parent.string(), strerror(errno));
  if (fs.f_type == BPF_FS_MAGIC) return {};
  if (parent == "/sys/fs/bpf") {
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") == 0) return {};
    return EGRESSD_ERROR("/sys/fs/bpf is not bpffs and mounting it failed: {}", strerror(errno));
  }
  return EGRESSD_ERROR("{} is not on a bpf filesystem (mount -t bpf bpf {})", parent.string(),
                       parent.string());
}

}  // namespace

Status BpfPrograms::PreparePinDir(const std::string& pin_dir) {
  EGRESSD_RETURN_IF_ERROR(EnsureBpffs(pin_dir));
  return EnsureDir(pin_dir);
}

StatusOr<std::unique_ptr<BpfPrograms>> BpfPrograms::Load(const std::string& pin_dir) {
  EGRESSD_RETURN_IF_ERROR(PreparePinDir(pin_dir));
  EGRESSD_RETURN_IF_ERROR(EnsureDir(pin_dir + "/maps"));
  EGRESSD_RETURN_IF_ERROR(EnsureDir(pin_dir + "/links"));

  egressd_bpf* skel = egressd_bpf__open();
  if (!skel) return EGRESSD_ERROR("cannot open the BPF object: {}", strerror(errno));
  bpf_map* maps[] = {skel->maps.sandbox_config,  skel->maps.deny_cidrs,
                     skel->maps.sock_orig_dst,   skel->maps.orig_dst,
                     skel->maps.kernel_counters, skel->maps.global_counters,
                     skel->maps.events};
  for (bpf_map* map : maps) {
    std::string path = pin_dir + "/maps/" + bpf_map__name(map);
    if (int err = bpf_map__set_pin_path(map, path.c_str()); err != 0) {
      egressd_bpf__destroy(skel);
      return EGRESSD_ERROR("cannot set pin path {}: {}", path, strerror(-err));
    }
  }
  // libbpf reuses a pinned map when it exists and is compatible, and pins a
  // new one otherwise; an incompatible pinned map makes the load fail.
  if (int err = egressd_bpf__load(skel); err != 0) {
    egressd_bpf__destroy(skel);
    return EGRESSD_ERROR(
        "cannot load the BPF programs: {} (an incompatible map pinned under {}/maps by another "
        "egressd version also causes this)",
        strerror(-err), pin_dir);
  }
  auto programs = std::unique_ptr<BpfPrograms>(new BpfPrograms(pin_dir, skel));
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return EGRESSD_ERROR("cannot count possible CPUs: {}", strerror(-ncpus));
  programs->ncpus_ = ncpus;
  return programs;
}

BpfPrograms::~BpfPrograms() {
  egressd_bpf__destroy(skel_);
}

std::string BpfPrograms::LinkDir(uint32_t sandbox_id) const {
  return pin_dir_ + "/links/" + std::to_string(sandbox_id);
}

Status BpfPrograms::AttachCgroup(int cgroup_fd, uint32_t sandbox_id) {
  std::string dir = LinkDir(sandbox_id);
  EGRESSD_RETURN_IF_ERROR(EnsureDir(dir));
  for (const ProgramLink& p : kPrograms) {
    bpf_link* link = bpf_program__attach_cgroup(p.get(skel_), cgroup_fd);
    if (!link) {
      Status st = EGRESSD_ERROR("cannot attach {} to the cgroup: {}", p.name, strerror(errno));
      DetachSandbox(sandbox_id);
      return st;
    }
    std::string path = dir + "/" + p.name;
    int err = bpf_link__pin(link, path.c_str());
    if (err != 0) {
      bpf_link__destroy(link);  // not pinned: closing the fd detaches it
      Status st = EGRESSD_ERROR("cannot pin link {}: {}", path, strerror(-err));
      DetachSandbox(sandbox_id);
      return st;
    }
    bpf_link__destroy(link);  // pinned: the bpffs file keeps it attached
  }
  return {};
}

Status BpfPrograms::DetachSandbox(uint32_t sandbox_id) {
  std::string dir = LinkDir(sandbox_id);
  Status result;
  for (const ProgramLink& p : kPrograms) {
    std::string path = dir + "/" + p.name;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      if (errno != ENOENT && result.ok())
        result = EGRESSD_ERROR("cannot open link {}: {}", path, strerror(errno));
      continue;
    }
    // Detach explicitly: other holders of the link (none expected) must not
    // keep the programs on the cgroup.
    if (bpf_link_detach(fd) != 0 && errno != ENOLINK && result.ok())
      result = EGRESSD_ERROR("cannot detach link {}: {}", path, strerror(errno));
    close(fd);
    if (unlink(path.c_str()) != 0 && errno != ENOENT && result.ok())
      result = EGRESSD_ERROR("cannot unpin {}: {}", path, strerror(errno));
  }
  if (rmdir(dir.c_str()) != 0 && errno != ENOENT && result.ok())
    result = EGRESSD_ERROR("cannot remove {}: {}", dir, strerror(errno));
  return result;
}

bool BpfPrograms::SandboxLinksPinned(uint32_t sandbox_id) const {
  std::string dir = LinkDir(sandbox_id);
  for (const ProgramLink& p : kPrograms) {
    struct stat st {};
    if (stat((dir + "/" + p.name).c_str(), &st) != 0) return false;
  }
  return true;
}

Status BpfPrograms::WriteConfig(uint64_t cgroup_id, const egressd_sandbox_config& config) {
  int fd = bpf_map__fd(skel_->maps.sandbox_config);
  if (bpf_map_update_elem(fd, &cgroup_id, &config, BPF_ANY) != 0)
    return EGRESSD_ERROR("cannot write the sandbox config of cgroup {}: {}", cgroup_id,
                         strerror(errno));
  return {};
}

Status BpfPrograms::PutCidrRule(const egressd_cidr_key& key, const egressd_cidr_value& value) {
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.deny_cidrs), &key, &value, BPF_ANY) != 0)
    return EGRESSD_ERROR("cannot write a deny_cidrs rule: {}", strerror(errno));
  return {};
}

Status BpfPrograms::DeleteCidrRule(const egressd_cidr_key& key) {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.deny_cidrs), &key) != 0 && errno != ENOENT)
    return EGRESSD_ERROR("cannot delete a deny_cidrs rule: {}", strerror(errno));
  return {};
}

Status BpfPrograms::PruneCidrRules(const std::set<uint32_t>& live_sets) {
  int fd = bpf_map__fd(skel_->maps.deny_cidrs);
  std::vector<egressd_cidr_key> doomed;
  egressd_cidr_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (!live_sets.count(next.policy_set_id >> 1))
      doomed.push_back(next);  // see EGRESSD_CIDR_SET_KEY
    key = next;
    prev = &key;
  }
  for (const auto& k : doomed) EGRESSD_RETURN_IF_ERROR(DeleteCidrRule(k));
  return {};
}

Status BpfPrograms::ResetCounters(uint32_t sandbox_id) {
  std::vector<egressd_kernel_counters> zero(ncpus_);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.kernel_counters), &sandbox_id, zero.data(),
                          BPF_ANY) != 0)
    return EGRESSD_ERROR("cannot reset counters of sandbox {}: {}", sandbox_id, strerror(errno));
  return {};
}

StatusOr<egressd_kernel_counters> BpfPrograms::ReadCounters(uint32_t sandbox_id) const {
  std::vector<egressd_kernel_counters> per_cpu(ncpus_);
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.kernel_counters), &sandbox_id, per_cpu.data()) !=
      0)
    return EGRESSD_ERROR("cannot read counters of sandbox {}: {}", sandbox_id, strerror(errno));
  egressd_kernel_counters sum{};
  for (const auto& c : per_cpu) {
    sum.connect_redirected += c.connect_redirected;
    sum.connect_denied += c.connect_denied;
    sum.udp_denied += c.udp_denied;
    sum.socket_denied += c.socket_denied;
    sum.dns_redirected += c.dns_redirected;
  }
  return sum;
}

uint64_t BpfPrograms::ReadGlobalCounter(egressd_global_counter counter) const {
  std::vector<uint64_t> per_cpu(ncpus_);
  uint32_t key = counter;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.global_counters), &key, per_cpu.data()) != 0)
    return 0;
  uint64_t sum = 0;
  for (uint64_t v : per_cpu) sum += v;
  return sum;
}

std::optional<egressd_orig_dst> BpfPrograms::TakeOrigDst(const egressd_orig_dst_key& key) const {
  egressd_orig_dst value{};
  if (bpf_map_lookup_and_delete_elem(bpf_map__fd(skel_->maps.orig_dst), &key, &value) != 0)
    return std::nullopt;
  return value;
}

size_t BpfPrograms::CountOrigDst() const {
  int fd = bpf_map__fd(skel_->maps.orig_dst);
  egressd_orig_dst_key key{}, next{};
  size_t n = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    ++n;
    key = next;
    prev = &key;
  }
  return n;
}

int BpfPrograms::events_map_fd() const {
  return bpf_map__fd(skel_->maps.events);
}

}  // namespace egressd::kernel
