/* Every struct and constant shared between the BPF programs (bpf/egressd.bpf.c) and
 * the daemon (userspace/). Both sides include this one header, so a layout
 * change is a compile error on both, not a silent mismatch at run time.
 *
 * Rules: fixed-width types only, explicit padding fields that are always
 * zeroed (map keys are compared byte by byte), addresses stored as four
 * 32-bit words in network byte order with IPv4 as v4-mapped IPv6
 * (::ffff:a.b.c.d), ports in network byte order unless the name says _host.
 */
#ifndef EGRESSD_BPF_SHARED_H
#define EGRESSD_BPF_SHARED_H

#ifdef __BPF__
/* vmlinux.h provides __u8 .. __u64. */
#else
#include <linux/types.h>
#endif

#define EGRESSD_MAX_SANDBOXES 4096   /* sandbox ids are 1..EGRESSD_MAX_SANDBOXES-1 */
#define EGRESSD_MAX_CIDR_RULES 65536 /* deny_cidrs entries across all policy sets */
#define EGRESSD_ORIG_DST_ENTRIES 65536
#define EGRESSD_EVENT_RING_BYTES (256 * 1024)

/* sandbox_config.flags */
#define EGRESSD_SANDBOX_LOOPBACK_LOCAL 0x1u /* own netns: 127/8 and ::1 are not redirected */
#define EGRESSD_SANDBOX_AUDIT 0x2u          /* learning mode: denies are reported, not enforced */

/* The value of the cgroup storage map: one per attached cgroup, shared by all
 * egressd programs on it. A zeroed value (sandbox_id == 0) means "attached but
 * not configured yet": every program denies. */
struct egressd_sandbox_config {
  __u32 sandbox_id;    /* index into the counters map; 0 = deny all */
  __u32 policy_set_id; /* which deny_cidrs rule set applies (LPM key) */
  __u32 flags;         /* EGRESSD_SANDBOX_* */
  __u16 proxy_port_host;
  __u16 dns_port_host;
  /* LOOPBACK_LOCAL applies only in this namespace (bpf_get_netns_cookie), so
   * a process of the cgroup that is somewhere else gets no loopback pass. */
  __u64 netns_cookie;
};

/* deny_cidrs: LPM trie key. prefixlen counts the bits after the prefixlen
 * field: 32 for policy_set_id plus the address prefix (IPv4 rules are
 * v4-mapped: 96 + n). No implicit padding. The set id field also carries the
 * family (EGRESSD_CIDR_SET_KEY), so an IPv6 rule such as ::/0 never matches
 * an IPv4 (v4-mapped) destination: the families stay apart, as in the proxy. */
#define EGRESSD_CIDR_SET_KEY(set_id, is_v6) (((set_id) << 1) | ((is_v6) ? 1u : 0u))
struct egressd_cidr_key {
  __u32 prefixlen;
  __u32 policy_set_id;
  __u32 addr[4];
};

struct egressd_cidr_value {
  __u32 rule_index; /* position in the policy's deny_cidrs, for audit events */
};

/* The original destination of a redirected TCP connection, keyed by the
 * redirected socket's own address as the proxy sees it from accept(). */
struct egressd_orig_dst_key {
  __u64 netns_cookie;
  __u32 client_addr[4];
  __u16 client_port; /* network byte order */
  __u16 pad0;        /* always 0 */
  __u32 pad1;        /* always 0 */
};

/* egressd_orig_dst.target: which of the sandbox's listeners the socket was sent to. */
#define EGRESSD_TARGET_PROXY 0u
#define EGRESSD_TARGET_DNS 1u /* TCP or UDP DNS: the DNS listener identifies the sandbox */

struct egressd_orig_dst {
  __u32 addr[4];
  __u16 port;   /* network byte order */
  __u16 family; /* AF_INET (the sandbox used an IPv4 socket) or AF_INET6 */
  __u32 sandbox_id;
  __u32 target; /* EGRESSD_TARGET_*; only PROXY sockets are indexed in orig_dst */
};

/* Per-sandbox kernel counters (per-CPU array indexed by sandbox_id; the
 * daemon sums the CPUs). Names match `egressctl stats --json`. */
struct egressd_kernel_counters {
  __u64 connect_redirected;
  __u64 connect_denied;
  __u64 udp_denied;
  __u64 socket_denied;
  __u64 dns_redirected;
  __u64 egress_dropped; /* backstop: packets to a non-loopback address that no hook judged */
  __u64 sockopt_denied; /* setsockopt of a routing header or IP source route */
};

/* Why the kernel refused something (egressd_event.reason). */
enum egressd_deny_reason {
  EGRESSD_DENY_NOT_CONFIGURED = 1, /* sandbox storage still zero */
  EGRESSD_DENY_CIDR = 2,           /* deny_cidrs */
  EGRESSD_DENY_UDP = 3,            /* UDP that is not DNS */
  EGRESSD_DENY_SOCKET = 4,         /* raw, ping, SCTP, MPTCP socket */
  EGRESSD_DENY_PROTO = 5,          /* connect() of a protocol we do not proxy */
  EGRESSD_DENY_EGRESS = 6,         /* backstop: a packet to a non-loopback address */
  EGRESSD_DENY_SOCKOPT = 7,        /* routing header / source route option (detail: optname) */
};

/* Kernel -> daemon audit event, through the ring buffer. */
struct egressd_event {
  __u64 timestamp_ns; /* bpf_ktime_get_ns */
  __u32 sandbox_id;
  __u32 reason; /* enum egressd_deny_reason */
  __u32 addr[4];
  __u16 port;     /* network byte order, 0 when not applicable */
  __u16 family;   /* socket family */
  __u32 protocol; /* IPPROTO_* (socket denies, backstop); the option level for sockopt */
  __u32 detail;   /* reason-specific: cidr rule index, socket type, option name */
  __u32 flags;    /* EGRESSD_EVENT_* */
};

/* egressd_event.flags */
#define EGRESSD_EVENT_NOT_ENFORCED 0x1u /* audit mode: reported, then let through */

/* Global counters (array map, one slot each). */
enum egressd_global_counter {
  EGRESSD_GLOBAL_EVENTS_DROPPED = 0,  /* ring buffer full */
  EGRESSD_GLOBAL_ORIG_DST_FAILED = 1, /* could not record an original destination */
  EGRESSD_GLOBAL_COUNTERS = 2,
};

#ifdef __cplusplus
static_assert(sizeof(struct egressd_sandbox_config) == 24);
static_assert(sizeof(struct egressd_cidr_key) == 24);
static_assert(sizeof(struct egressd_cidr_value) == 4);
static_assert(sizeof(struct egressd_orig_dst_key) == 32);
static_assert(sizeof(struct egressd_orig_dst) == 28);
static_assert(sizeof(struct egressd_kernel_counters) == 56);
static_assert(sizeof(struct egressd_event) == 48);
#elif defined(__BPF__)
_Static_assert(sizeof(struct egressd_sandbox_config) == 24, "layout");
_Static_assert(sizeof(struct egressd_cidr_key) == 24, "layout");
_Static_assert(sizeof(struct egressd_orig_dst_key) == 32, "layout");
_Static_assert(sizeof(struct egressd_orig_dst) == 28, "layout");
_Static_assert(sizeof(struct egressd_kernel_counters) == 56, "layout");
_Static_assert(sizeof(struct egressd_event) == 48, "layout");
#endif

#endif /* EGRESSD_BPF_SHARED_H */
