#include "userspace/kernel/socket_destroyer.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "userspace/common/unique_fd.h"
#include "userspace/kernel/cgroup.h"
#include "userspace/kernel/netns.h"

namespace egressd::kernel {
namespace {

constexpr int kNetlinkTimeoutSeconds = 5;

// States in which a TCP socket has a peer. Left out: LISTEN, CLOSE (never
// connected, or done), TIME_WAIT and NEW_SYN_RECV (not full sockets: the
// kernel knows no cgroup for them, and they carry no data of the owner's).
constexpr uint32_t kTcpStates =
    (1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) | (1u << TCP_SYN_RECV) | (1u << TCP_FIN_WAIT1) |
    (1u << TCP_FIN_WAIT2) | (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING);
// A connected UDP socket is "established"; an unconnected one is "close".
constexpr uint32_t kUdpStates = 1u << TCP_ESTABLISHED;

// The filter bytecode jumps are one byte wide: a chain of OR-ed cgroup
// conditions that jumps to its end on a match fits ~20; ask in batches.
constexpr size_t kCgroupsPerDump = 16;

// Bytecode accepting a socket whose cgroup is one of `ids`: each condition
// jumps to the end on a match (accept) and to the next one on a miss; the
// last miss jumps 4 bytes past the end, which the kernel reads as reject.
std::vector<uint8_t> CgroupFilter(const uint64_t* ids, size_t n) {
  constexpr size_t kOpSize = sizeof(inet_diag_bc_op) + sizeof(uint64_t);
  std::vector<uint8_t> bc(kOpSize * n);
  for (size_t i = 0; i < n; ++i) {
    const size_t rest = kOpSize * (n - i);
    inet_diag_bc_op op{};
    op.code = INET_DIAG_BC_CGROUP_COND;
    op.yes = static_cast<unsigned char>(rest);
    op.no = static_cast<unsigned short>(i + 1 < n ? kOpSize : rest + 4);
    memcpy(bc.data() + i * kOpSize, &op, sizeof(op));
    memcpy(bc.data() + i * kOpSize + sizeof(op), &ids[i], sizeof(uint64_t));
  }
  return bc;
}

// One sock_diag request: the header, the request and optionally the filter.
std::vector<uint8_t> DiagMessage(uint16_t type, uint16_t flags, uint32_t seq,
                                 const inet_diag_req_v2& req, const std::vector<uint8_t>& filter) {
  const size_t attr_len = filter.empty() ? 0 : NLA_HDRLEN + filter.size();
  const size_t len = NLMSG_LENGTH(sizeof(req)) + NLA_ALIGN(attr_len);
  std::vector<uint8_t> msg(NLMSG_ALIGN(len));
  auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
  nlh->nlmsg_len = static_cast<uint32_t>(len);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  memcpy(NLMSG_DATA(nlh), &req, sizeof(req));
  if (!filter.empty()) {
    auto* attr = reinterpret_cast<nlattr*>(msg.data() + NLMSG_LENGTH(sizeof(req)));
    attr->nla_type = INET_DIAG_REQ_BYTECODE;
    attr->nla_len = static_cast<uint16_t>(attr_len);
    memcpy(reinterpret_cast<uint8_t*>(attr) + NLA_HDRLEN, filter.data(), filter.size());
  }
  return msg;
}

class SockDiag {
 public:
  Status Open() {
    fd_.Reset(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!fd_.valid()) return EGRESSD_ERROR("sock_diag socket: {}", strerror(errno));
    timeval tv{kNetlinkTimeoutSeconds, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return {};
  }

  // The sockets of `family`/`protocol` in `states` whose cgroup is one of `ids`.
  Status Dump(uint8_t family, uint8_t protocol, uint32_t states, const uint64_t* ids, size_t n,
              std::vector<inet_diag_msg>* out) {
    inet_diag_req_v2 req{};
    req.sdiag_family = family;
    req.sdiag_protocol = protocol;
    req.idiag_states = states;
    const uint32_t seq = ++seq_;
    EGRESSD_RETURN_IF_ERROR(Send(DiagMessage(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq,
                                             req, CgroupFilter(ids, n))));
    for (;;) {
      ssize_t len = Receive();
      if (len < 0) return EGRESSD_ERROR("sock_diag dump: {}", strerror(errno));
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf_); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq) continue;
        if (h->nlmsg_type == NLMSG_DONE) return {};
        if (h->nlmsg_type == NLMSG_ERROR) {
          const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
          return EGRESSD_ERROR("sock_diag dump: {}", strerror(-err->error));
        }
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
            h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
          continue;
        out->push_back(*static_cast<const inet_diag_msg*>(NLMSG_DATA(h)));
      }
    }
  }

  // 0 when destroyed, else the errno the kernel answered.
  int Destroy(uint8_t protocol, const inet_diag_msg& sock) {
    inet_diag_req_v2 req{};
    req.sdiag_family = sock.idiag_family;
    req.sdiag_protocol = protocol;
    req.idiag_states = ~0u;
    req.id = sock.id;
    const uint32_t seq = ++seq_;
    if (!Send(DiagMessage(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, req, {})).ok()) return EIO;
    for (;;) {
      ssize_t len = Receive();
      if (len < 0) return errno;
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf_); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
        if (h->nlmsg_seq == seq && h->nlmsg_type == NLMSG_ERROR)
          return -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
    }
  }

 private:
  Status Send(const std::vector<uint8_t>& msg) {
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd_.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) != static_cast<ssize_t>(msg.size()))
      return EGRESSD_ERROR("sock_diag send: {}", strerror(errno));
    return {};
  }
  ssize_t Receive() { return recv(fd_.get(), buf_, sizeof(buf_), 0); }

  UniqueFd fd_;
  uint32_t seq_ = 0;
  alignas(nlmsghdr) uint8_t buf_[64 * 1024];
};

bool HasPeer(uint8_t protocol, const inet_diag_msg& sock) {
  if (protocol == IPPROTO_UDP && sock.id.idiag_dport == 0) return false;  // unconnected
  return !IsLoopbackPeer(sock.idiag_family, sock.id.idiag_dst);
}

// Sweeps the calling thread's network namespace.
Status SweepHere(const std::vector<uint64_t>& ids, SweepAction action, SocketSweep* sweep) {
  SockDiag diag;
  EGRESSD_RETURN_IF_ERROR(diag.Open());
  struct Kind {
    uint8_t protocol;
    uint32_t states;
    size_t* count;
  };
  const Kind kinds[] = {{IPPROTO_TCP, kTcpStates, &sweep->tcp},
                        {IPPROTO_UDP, kUdpStates, &sweep->udp}};
  for (const Kind& kind : kinds) {
    for (uint8_t family : {uint8_t{AF_INET}, uint8_t{AF_INET6}}) {
      std::vector<inet_diag_msg> found;
      for (size_t i = 0; i < ids.size(); i += kCgroupsPerDump)
        EGRESSD_RETURN_IF_ERROR(diag.Dump(family, kind.protocol, kind.states, ids.data() + i,
                                          std::min(kCgroupsPerDump, ids.size() - i), &found));
      for (const inet_diag_msg& sock : found) {
        if (!HasPeer(kind.protocol, sock)) continue;
        if (action == SweepAction::kCountOnly) {
          ++*kind.count;
          continue;
        }
        int err = diag.Destroy(kind.protocol, sock);
        if (err == 0)
          ++*kind.count;
        else if (err != ENOENT)  // ENOENT: it closed by itself meanwhile
          ++sweep->failed;
      }
    }
  }
  return {};
}

// The network namespaces to sweep: the sandbox's and its processes', each once.
StatusOr<std::vector<UniqueFd>> NamespacesOf(const std::string& cgroup_dir,
                                             const std::string& netns_path) {
  std::vector<UniqueFd> out;
  std::vector<std::pair<dev_t, ino_t>> seen;
  auto add = [&](const std::string& path) -> bool {
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd.valid() || fstat(fd.get(), &st) != 0) return false;
    for (const auto& [dev, ino] : seen)
      if (dev == st.st_dev && ino == st.st_ino) return true;
    seen.emplace_back(st.st_dev, st.st_ino);
    out.push_back(std::move(fd));
    return true;
  };
  const std::string own = netns_path.empty() ? "/proc/self/ns/net" : netns_path;
  if (!add(own)) return EGRESSD_ERROR("network namespace {}: {}", own, strerror(errno));
  for (int pid : CgroupProcesses(cgroup_dir))
    add("/proc/" + std::to_string(pid) + "/ns/net");  // a process that exited has no sockets
  return out;
}

}  // namespace

bool IsLoopbackPeer(int family, const uint32_t addr[4]) {
  auto first_byte = [](uint32_t word) { return reinterpret_cast<const uint8_t*>(&word)[0]; };
  if (family == AF_INET) return first_byte(addr[0]) == 127;
  if (family != AF_INET6) return false;
  if (addr[0] != 0 || addr[1] != 0) return false;
  if (addr[2] == 0 && addr[3] == htonl(1)) return true;               // ::1
  return addr[2] == htonl(0x0000ffff) && first_byte(addr[3]) == 127;  // ::ffff:127.0.0.0/104
}

StatusOr<SocketSweep> SweepCgroupSockets(const std::string& cgroup_dir,
                                         const std::string& netns_path, SweepAction action) {
  std::vector<uint64_t> ids;
  for (const std::string& dir : CgroupTree(cgroup_dir)) {
    struct stat st {};
    if (stat(dir.c_str(), &st) == 0) ids.push_back(st.st_ino);  // the cgroup id on cgroup2
  }
  if (ids.empty()) return EGRESSD_ERROR("cgroup {}: {}", cgroup_dir, strerror(errno));
  auto namespaces = NamespacesOf(cgroup_dir, netns_path);
  if (!namespaces.ok()) return namespaces.status();
  SocketSweep sweep;
  sweep.action = action;
  for (const UniqueFd& ns : *namespaces)
    EGRESSD_RETURN_IF_ERROR(RunInNetns(
        ns.get(), [&] { return SweepHere(ids, action, &sweep); }, Loopback::kLeaveAsIs));
  return sweep;
}

SocketSweep SweepAtAttach(const std::string& cgroup_dir, const std::string& netns_path,
                          SweepAction action, std::vector<std::string>* warnings) {
  auto sweep = SweepCgroupSockets(cgroup_dir, netns_path, action);
  if (!sweep.ok()) {
    spdlog::error("{}: sockets opened before attach: {}", cgroup_dir, sweep.status().ToString());
    warnings->push_back(fmt::format(
        "could not close the sockets {} opened before attach ({}); egressd drops what they send",
        cgroup_dir, sweep.status().message()));
    SocketSweep none;
    none.action = action;
    return none;
  }
  if (sweep->failed > 0)
    warnings->push_back(fmt::format(
        "{} socket(s) {} opened before attach could not be closed; egressd drops what they send",
        sweep->failed, cgroup_dir));
  if (sweep->total() > 0)
    spdlog::info("{}: {} {} TCP and {} UDP socket(s) opened before attach (peer not loopback)",
                 cgroup_dir, action == SweepAction::kClose ? "closed" : "audit mode, left open",
                 sweep->tcp, sweep->udp);
  return *sweep;
}

}  // namespace egressd::kernel
