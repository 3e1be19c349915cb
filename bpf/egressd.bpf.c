// SPDX-License-Identifier: GPL-2.0
/* egressd's kernel side: cgroup programs attached to every sandbox cgroup.
 *
 * connect4/6   TCP: deny_cidrs -> EPERM, port 53 -> the sandbox's DNS
 *              listener, else remember the original destination and
 *              rewrite it to the proxy listener.
 *              UDP connect: port 53 -> DNS listener, anything else EPERM.
 * sendmsg4/6   unconnected UDP: port 53 -> DNS listener, else EPERM.
 * recvmsg4/6   DNS replies look as if they came from the resolver asked.
 * getpeername4/6  a redirected socket shows its original peer.
 * sockops      at TCP_CONNECT_CB (before the SYN) index the original
 *              destination by the socket's own address for the proxy; at
 *              PASSIVE_ESTABLISHED_CB mark a connection the sandbox accepted.
 * sock_create  only TCP and UDP sockets may be created.
 * setsockopt   routing headers and IPv4 source routes are refused: they send
 *              a packet to a first hop the connect/sendmsg hooks never saw.
 * egress       (cgroup_skb) the backstop: a packet leaves only to a loopback
 *              address, or as the reply of a connection the sandbox accepted
 *              (to that connection's peer, or a listener's SYN-ACK). Catches
 *              what no hook above judged: sockets opened before attach, the
 *              IP_RETOPTS cmsg, any header that changes the first hop.
 *
 * Every program first reads the sandbox's config from cgroup storage; a
 * zeroed config (attached, not configured yet) denies everything. A sandbox
 * in audit mode (EGRESSD_SANDBOX_AUDIT) gets the same decisions, but a deny
 * is only reported (event flag EGRESSD_EVENT_NOT_ENFORCED) and the traffic
 * continues as if the rule were absent.
 *
 * Verifier note (clang 14): writes to ctx->user_ip6[i] and reads of
 * skops->local_ip6[i] must not sit inside branches ("dereference of modified
 * ctx ptr"): compute first, then read/store all four words unconditionally.
 */
// clang-format off: vmlinux.h must come before the libbpf headers.
#include "vmlinux.h"
// clang-format on

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "egressd_shared.h"

#define AF_INET 2
#define AF_INET6 10
#define DNS_PORT_NET bpf_htons(53)
#define LOOPBACK4_NET bpf_htonl(0x7f000001)
#define V4_MAPPED_PREFIX_NET bpf_htonl(0x0000ffff)
#define SK_STORAGE_GET_F_CREATE 1

char LICENSE[] SEC("license") = "GPL";

/* Written by: the daemon when it attaches or re-configures a sandbox.
 * Read by: every program, to know which sandbox (and rule set) it serves.
 * Key __u64 (cgroup id): one value per cgroup, shared by all attach types. */
struct {
  __uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
  __type(key, __u64);
  __type(value, struct egressd_sandbox_config);
} sandbox_config SEC(".maps");

/* Written by: the daemon (policy deny_cidrs, one rule set per policy version).
 * Read by: connect4/6, sendmsg4/6. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, EGRESSD_MAX_CIDR_RULES);
  __type(key, struct egressd_cidr_key);
  __type(value, struct egressd_cidr_value);
} deny_cidrs SEC(".maps");

/* Written by: connect4/6 and sendmsg4/6 (the destination the sandbox asked for).
 * Read by: sockops (to index it), getpeername4/6, recvmsg4/6. Lives and dies
 * with the socket. */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct egressd_orig_dst);
} sock_orig_dst SEC(".maps");

/* Written by: sockops at PASSIVE_ESTABLISHED_CB (a connection the sandbox
 * accepted: a server it exposes). Read by: egress, which lets such a socket
 * send to its own peer. Pinned and reused by a restarted daemon: a map of a
 * new load would have lost every mark, and those replies would be dropped. */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u32);
} sock_accepted SEC(".maps");

/* Written by: sockops at TCP_CONNECT_CB. Read and deleted by: the proxy after
 * accept(), keyed by the peer address and netns cookie of the accepted socket. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, EGRESSD_ORIG_DST_ENTRIES);
  __type(key, struct egressd_orig_dst_key);
  __type(value, struct egressd_orig_dst);
} orig_dst SEC(".maps");

/* Written by: every program (per-CPU increments). Read by: the daemon (stats),
 * which also zeroes a slot when it hands out a sandbox id. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, EGRESSD_MAX_SANDBOXES);
  __type(key, __u32);
  __type(value, struct egressd_kernel_counters);
} kernel_counters SEC(".maps");

/* Written by: programs on internal failures. Read by: the daemon (status). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, EGRESSD_GLOBAL_COUNTERS);
  __type(key, __u32);
  __type(value, __u64);
} global_counters SEC(".maps");

/* Written by: programs on every deny. Read by: the daemon's audit reader. */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, EGRESSD_EVENT_RING_BYTES);
} events SEC(".maps");

static __always_inline void count_global(__u32 slot) {
  __u64* value = bpf_map_lookup_elem(&global_counters, &slot);
  if (value) *value += 1;
}

static __always_inline struct egressd_kernel_counters* counters_of(__u32 sandbox_id) {
  return bpf_map_lookup_elem(&kernel_counters, &sandbox_id);
}

static __always_inline void emit_deny(__u32 sandbox_id, __u32 reason, const __u32 addr[4],
                                      __u16 port, __u16 family, __u32 protocol, __u32 detail,
                                      __u32 flags) {
  struct egressd_event* ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
  if (!ev) {
    count_global(EGRESSD_GLOBAL_EVENTS_DROPPED);
    return;
  }
  ev->timestamp_ns = bpf_ktime_get_ns();
  ev->sandbox_id = sandbox_id;
  ev->reason = reason;
  ev->addr[0] = addr[0];
  ev->addr[1] = addr[1];
  ev->addr[2] = addr[2];
  ev->addr[3] = addr[3];
  ev->port = port;
  ev->family = family;
  ev->protocol = protocol;
  ev->detail = detail;
  ev->flags = flags;
  /* Wake the daemon only when the ring fills up; it also drains the ring
   * every 100 ms. A burst of denies then costs no wake-up per event. */
  __u64 queued = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
  bpf_ringbuf_submit(
      ev, queued > EGRESSD_EVENT_RING_BYTES / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline int is_v4_mapped(const __u32 addr[4]) {
  return addr[0] == 0 && addr[1] == 0 && addr[2] == V4_MAPPED_PREFIX_NET;
}

/* Returns the matching rule's index + 1, or 0 when no deny_cidrs rule matches. */
static __always_inline __u32 cidr_denied(__u32 policy_set_id, const __u32 addr[4]) {
  struct egressd_cidr_key key = {
      .prefixlen = 32 + 128,
      .policy_set_id = EGRESSD_CIDR_SET_KEY(policy_set_id, !is_v4_mapped(addr)),
  };
  key.addr[0] = addr[0];
  key.addr[1] = addr[1];
  key.addr[2] = addr[2];
  key.addr[3] = addr[3];
  struct egressd_cidr_value* rule = bpf_map_lookup_elem(&deny_cidrs, &key);
  return rule ? rule->rule_index + 1 : 0;
}

static __always_inline int is_loopback(const __u32 addr[4]) {
  if (is_v4_mapped(addr)) return (bpf_ntohl(addr[3]) >> 24) == 127;
  return addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && addr[3] == bpf_htonl(1);
}

/* 127.0.0.11: Docker's embedded resolver, which listens there on a port other
 * than 53 (NAT'd from 53). Never the container's own business: it would
 * resolve names the policy denies. */
static __always_inline int is_docker_dns(const __u32 addr[4]) {
  return is_v4_mapped(addr) && addr[3] == bpf_htonl(0x7f00000b);
}

/* Loopback or unspecified (0.0.0.0, ::): connect() to either stays on this host. */
static __always_inline int is_local(const __u32 addr[4]) {
  if (is_loopback(addr)) return 1;
  if (is_v4_mapped(addr)) return addr[3] == 0;
  return addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && addr[3] == 0;
}

static __always_inline int remember_destination(struct bpf_sock_addr* ctx, __u32 sandbox_id,
                                                const __u32 addr[4], __u16 port, __u16 family,
                                                __u32 target) {
  struct egressd_orig_dst* od =
      bpf_sk_storage_get(&sock_orig_dst, ctx->sk, 0, SK_STORAGE_GET_F_CREATE);
  if (!od) return 0;
  od->addr[0] = addr[0];
  od->addr[1] = addr[1];
  od->addr[2] = addr[2];
  od->addr[3] = addr[3];
  od->port = port;
  od->family = family;
  od->sandbox_id = sandbox_id;
  od->target = target;
  return 1;
}

enum verdict { VERDICT_DENY, VERDICT_PASS, VERDICT_TO_PROXY, VERDICT_TO_DNS };

static __always_inline void count_deny(struct egressd_kernel_counters* c, __u32 type) {
  if (!c) return;
  if (type == SOCK_DGRAM)
    c->udp_denied += 1;
  else
    c->connect_denied += 1;
}

/* The one decision shared by connect and sendmsg, v4 and v6. */
static __always_inline enum verdict decide(struct bpf_sock_addr* ctx,
                                           const struct egressd_sandbox_config* cfg,
                                           const __u32 addr[4], __u16 port, __u16 family,
                                           int is_connect) {
  __u32 type = ctx->type;
  __u32 protocol = ctx->protocol;
  if (cfg->sandbox_id == 0) {
    emit_deny(0, EGRESSD_DENY_NOT_CONFIGURED, addr, port, family, protocol, 0, 0);
    return VERDICT_DENY;
  }
  struct egressd_kernel_counters* c = counters_of(cfg->sandbox_id);
  /* DNS first, even to the sandbox's own loopback: a resolver there (Docker's
   * 127.0.0.11, systemd-resolved's 127.0.0.53) would answer names the policy
   * denies. */
  int dns = port == DNS_PORT_NET && (type == SOCK_DGRAM || (type == SOCK_STREAM && is_connect));
  if (!dns && (cfg->flags & EGRESSD_SANDBOX_LOOPBACK_LOCAL) && is_local(addr) &&
      !is_docker_dns(addr) && bpf_get_netns_cookie(ctx) == cfg->netns_cookie)
    return VERDICT_PASS;
  /* DNS goes to egressd's forwarder whatever address it was sent to: the
   * sandbox never talks to that address, so deny_cidrs does not apply to it
   * (a resolver in 10.0.0.0/8 must not break every lookup); the policy
   * judges the name instead. */
  if (dns) {
    if (c) c->dns_redirected += 1;
    return VERDICT_TO_DNS;
  }
  int audit = (cfg->flags & EGRESSD_SANDBOX_AUDIT) != 0;
  __u32 event_flags = audit ? EGRESSD_EVENT_NOT_ENFORCED : 0;

  __u32 rule = cidr_denied(cfg->policy_set_id, addr);
  if (rule) {
    emit_deny(cfg->sandbox_id, EGRESSD_DENY_CIDR, addr, port, family, protocol, rule - 1,
              event_flags);
    if (!audit) {
      count_deny(c, type);
      return VERDICT_DENY;
    }
  }
  if (type == SOCK_STREAM && is_connect) {
    if (c) c->connect_redirected += 1;
    return VERDICT_TO_PROXY;
  }
  emit_deny(cfg->sandbox_id, type == SOCK_DGRAM ? EGRESSD_DENY_UDP : EGRESSD_DENY_PROTO, addr, port,
            family, protocol, type, event_flags);
  if (audit) return VERDICT_PASS;
  count_deny(c, type);
  return VERDICT_DENY;
}

static __always_inline int handle4(struct bpf_sock_addr* ctx, int is_connect) {
  struct egressd_sandbox_config* cfg = bpf_get_local_storage(&sandbox_config, 0);
  __u32 dst = ctx->user_ip4;
  __u16 port = (__u16)ctx->user_port;
  __u32 addr[4] = {0, 0, V4_MAPPED_PREFIX_NET, dst};

  enum verdict v = decide(ctx, cfg, addr, port, AF_INET, is_connect);
  if (v == VERDICT_DENY) return 0;
  if (v == VERDICT_PASS) return 1;
  __u32 target = v == VERDICT_TO_PROXY ? EGRESSD_TARGET_PROXY : EGRESSD_TARGET_DNS;
  if (!remember_destination(ctx, cfg->sandbox_id, addr, port, AF_INET, target)) {
    count_global(EGRESSD_GLOBAL_ORIG_DST_FAILED);
    return 0; /* fail closed: the proxy could not recover where this was going */
  }
  ctx->user_ip4 = LOOPBACK4_NET;
  ctx->user_port = bpf_htons(v == VERDICT_TO_PROXY ? cfg->proxy_port_host : cfg->dns_port_host);
  return 1;
}

static __always_inline int handle6(struct bpf_sock_addr* ctx, int is_connect) {
  struct egressd_sandbox_config* cfg = bpf_get_local_storage(&sandbox_config, 0);
  __u32 addr[4];
  addr[0] = ctx->user_ip6[0];
  addr[1] = ctx->user_ip6[1];
  addr[2] = ctx->user_ip6[2];
  addr[3] = ctx->user_ip6[3];
  __u16 port = (__u16)ctx->user_port;

  enum verdict v = decide(ctx, cfg, addr, port, AF_INET6, is_connect);
  if (v == VERDICT_DENY) return 0;
  if (v == VERDICT_PASS) return 1;
  __u32 target = v == VERDICT_TO_PROXY ? EGRESSD_TARGET_PROXY : EGRESSD_TARGET_DNS;
  if (!remember_destination(ctx, cfg->sandbox_id, addr, port, AF_INET6, target)) {
    count_global(EGRESSD_GLOBAL_ORIG_DST_FAILED);
    return 0;
  }
  /* A v4-mapped destination travels as IPv4: send it to ::ffff:127.0.0.1. */
  int mapped = is_v4_mapped(addr);
  __u32 w2 = mapped ? V4_MAPPED_PREFIX_NET : 0;
  __u32 w3 = mapped ? LOOPBACK4_NET : bpf_htonl(1);
  ctx->user_ip6[0] = 0;
  ctx->user_ip6[1] = 0;
  ctx->user_ip6[2] = w2;
  ctx->user_ip6[3] = w3;
  ctx->user_port = bpf_htons(v == VERDICT_TO_PROXY ? cfg->proxy_port_host : cfg->dns_port_host);
  return 1;
}

SEC("cgroup/connect4")
int egressd_connect4(struct bpf_sock_addr* ctx) {
  return handle4(ctx, 1);
}

SEC("cgroup/connect6")
int egressd_connect6(struct bpf_sock_addr* ctx) {
  return handle6(ctx, 1);
}

SEC("cgroup/sendmsg4")
int egressd_sendmsg4(struct bpf_sock_addr* ctx) {
  return handle4(ctx, 0);
}

SEC("cgroup/sendmsg6")
int egressd_sendmsg6(struct bpf_sock_addr* ctx) {
  return handle6(ctx, 0);
}

/* recvmsg and getpeername: if the peer is one of egressd's own listeners and
 * this socket was redirected, show the destination the sandbox asked for.
 * These hooks cannot deny; they always return 1. */
static __always_inline int is_listener_port(const struct egressd_sandbox_config* cfg, __u32 port,
                                            int stream) {
  /* TCP may go to either listener (port 53 goes to DNS); UDP only to DNS. */
  return port == bpf_htons(cfg->dns_port_host) ||
         (stream && port == bpf_htons(cfg->proxy_port_host));
}

static __always_inline int restore4(struct bpf_sock_addr* ctx, int stream) {
  struct egressd_sandbox_config* cfg = bpf_get_local_storage(&sandbox_config, 0);
  if (cfg->sandbox_id == 0) return 1;
  if (ctx->user_ip4 != LOOPBACK4_NET || !is_listener_port(cfg, ctx->user_port, stream)) return 1;
  struct egressd_orig_dst* od = bpf_sk_storage_get(&sock_orig_dst, ctx->sk, 0, 0);
  if (!od || !is_v4_mapped(od->addr)) return 1;
  ctx->user_ip4 = od->addr[3];
  ctx->user_port = od->port;
  return 1;
}

static __always_inline int restore6(struct bpf_sock_addr* ctx, int stream) {
  struct egressd_sandbox_config* cfg = bpf_get_local_storage(&sandbox_config, 0);
  __u32 cur[4];
  cur[0] = ctx->user_ip6[0];
  cur[1] = ctx->user_ip6[1];
  cur[2] = ctx->user_ip6[2];
  cur[3] = ctx->user_ip6[3];
  __u32 port = ctx->user_port;
  if (cfg->sandbox_id == 0) return 1;
  int from_listener = is_listener_port(cfg, port, stream) && cur[0] == 0 && cur[1] == 0 &&
                      ((cur[2] == 0 && cur[3] == bpf_htonl(1)) ||
                       (cur[2] == V4_MAPPED_PREFIX_NET && cur[3] == LOOPBACK4_NET));
  if (!from_listener) return 1;
  struct egressd_orig_dst* od = bpf_sk_storage_get(&sock_orig_dst, ctx->sk, 0, 0);
  if (!od) return 1;
  __u32 n0 = od->addr[0], n1 = od->addr[1], n2 = od->addr[2], n3 = od->addr[3];
  __u16 nport = od->port;
  ctx->user_ip6[0] = n0;
  ctx->user_ip6[1] = n1;
  ctx->user_ip6[2] = n2;
  ctx->user_ip6[3] = n3;
  ctx->user_port = nport;
  return 1;
}

SEC("cgroup/getpeername4")
int egressd_getpeername4(struct bpf_sock_addr* ctx) {
  return restore4(ctx, ctx->type == SOCK_STREAM);
}

SEC("cgroup/getpeername6")
int egressd_getpeername6(struct bpf_sock_addr* ctx) {
  return restore6(ctx, ctx->type == SOCK_STREAM);
}

SEC("cgroup/recvmsg4")
int egressd_recvmsg4(struct bpf_sock_addr* ctx) {
  return restore4(ctx, 0);
}

SEC("cgroup/recvmsg6")
int egressd_recvmsg6(struct bpf_sock_addr* ctx) {
  return restore6(ctx, 0);
}

SEC("sockops")
int egressd_sockops(struct bpf_sock_ops* skops) {
  /* Read every context field up front (see the verifier note at the top). */
  __u32 op = skops->op;
  __u32 family = skops->family;
  __u32 l4 = skops->local_ip4;
  __u32 l6_0 = skops->local_ip6[0];
  __u32 l6_1 = skops->local_ip6[1];
  __u32 l6_2 = skops->local_ip6[2];
  __u32 l6_3 = skops->local_ip6[3];
  __u32 lport_host = skops->local_port;
  if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
    /* Called for every accepted connection without any callback flag. */
    struct bpf_sock* child = skops->sk;
    if (!child) return 1;
    __u32* mark = bpf_sk_storage_get(&sock_accepted, child, 0, SK_STORAGE_GET_F_CREATE);
    if (mark)
      *mark = 1;
    else
      count_global(EGRESSD_GLOBAL_ORIG_DST_FAILED);
    return 1;
  }
  if (op != BPF_SOCK_OPS_TCP_CONNECT_CB) return 1;

  struct bpf_sock* sk = skops->sk;
  if (!sk) return 1;
  struct egressd_orig_dst* od = bpf_sk_storage_get(&sock_orig_dst, sk, 0, 0);
  if (!od) return 1; /* not redirected (loopback-local, or not ours) */
  /* DNS over TCP: the sandbox's own DNS listener knows who it is. */
  if (od->target != EGRESSD_TARGET_PROXY) return 1;

  struct egressd_orig_dst_key key = {};
  key.netns_cookie = bpf_get_netns_cookie(skops);
  if (family == AF_INET) {
    key.client_addr[2] = V4_MAPPED_PREFIX_NET;
    key.client_addr[3] = l4;
  } else {
    key.client_addr[0] = l6_0;
    key.client_addr[1] = l6_1;
    key.client_addr[2] = l6_2;
    key.client_addr[3] = l6_3;
  }
  key.client_port = bpf_htons((__u16)lport_host);
  struct egressd_orig_dst value = *od;
  if (bpf_map_update_elem(&orig_dst, &key, &value, BPF_ANY) != 0)
    count_global(EGRESSD_GLOBAL_ORIG_DST_FAILED);
  return 1;
}

SEC("cgroup/sock_create")
int egressd_sock_create(struct bpf_sock* sk) {
  struct egressd_sandbox_config* cfg = bpf_get_local_storage(&sandbox_config, 0);
  __u32 type = sk->type;
  __u32 protocol = sk->protocol;
  __u32 family = sk->family;
  __u32 none[4] = {0, 0, 0, 0};
  if (cfg->sandbox_id == 0) {
    emit_deny(0, EGRESSD_DENY_NOT_CONFIGURED, none, 0, family, protocol, type, 0);
    return 0;
  }
  /* Only plain TCP and UDP: raw, ping (ICMP datagram), SCTP, MPTCP, UDP-Lite
   * and anything else the hooks above do not fully cover are refused. */
  if ((type == SOCK_STREAM && protocol == IPPROTO_TCP) ||
      (type == SOCK_DGRAM && protocol == IPPROTO_UDP))
    return 1;
  if (cfg->flags & EGRESSD_SANDBOX_AUDIT) {
    emit_deny(cfg->sandbox_id, EGRESSD_DENY_SOCKET, none, 0, family, protocol, type,
              EGRESSD_EVENT_NOT_ENFORCED);
    return 1;
  }
  struct egressd_kernel_counters* c = counters_of(cfg->sandbox_id);
  if (c) c->socket_denied += 1;
  emit_deny(cfg->sandbox_id, EGRESSD_DENY_SOCKET, none, 0, family, protocol, type, 0);
  return 0;
}

/* setsockopt: a routing header (IPv6) or a source route (IPv4 IP_OPTIONS)
 * makes the kernel send to its first hop, while connect/sendmsg judged the
 * final address. Refused (EPERM); every other option is left alone. */
#define SOL_IP 0
#define SOL_IPV6 41
#define IP_OPTIONS 4
#define IPV6_2292RTHDR 5
#define IPV6_2292PKTOPTIONS 6
#define IPV6_RTHDR 57
#define SOCKOPT_BUF_MAX 4096 /* the kernel hands a program at most a page */

static __always_inline int is_route_option(__s32 level, __s32 optname) {
  if (level == SOL_IP) return optname == IP_OPTIONS;
  if (level == SOL_IPV6)
    return optname == IPV6_RTHDR || optname == IPV6_2292RTHDR || optname == IPV6_2292PKTOPTIONS;
  return 0;
}

SEC("cgroup/setsockopt")
int egressd_setsockopt(struct bpf_sockopt* ctx) {
  __s32 level = ctx->level;
  __s32 optname = ctx->optname;
  __s32 optlen = ctx->optlen;
  /* Longer than a page: the program saw a truncated copy; optlen 0 tells the
   * kernel to use the caller's buffer as it is (kernels before 6.5 fail
   * with EFAULT otherwise). */
  if (optlen > SOCKOPT_BUF_MAX) ctx->optlen = 0;
  if (!is_route_option(level, optname)) return 1;

  struct egressd_sandbox_config* cfg = bpf_get_local_storage(&sandbox_config, 0);
  __u32 none[4] = {0, 0, 0, 0};
  struct bpf_sock* sk = ctx->sk;
  __u16 family = sk ? sk->family : 0;
  __u32 id = cfg->sandbox_id;
  if (id != 0 && (cfg->flags & EGRESSD_SANDBOX_AUDIT)) {
    emit_deny(id, EGRESSD_DENY_SOCKOPT, none, 0, family, level, optname,
              EGRESSD_EVENT_NOT_ENFORCED);
    return 1;
  }
  struct egressd_kernel_counters* c = id ? counters_of(id) : 0;
  if (c) c->sockopt_denied += 1;
  emit_deny(id, EGRESSD_DENY_SOCKOPT, none, 0, family, level, optname, 0);
  return 0;
}

/* The backstop (cgroup_skb/egress). Everything a sandbox may send goes to
 * egressd's listeners or to its own loopback, so a packet whose IP
 * destination is not loopback is dropped, unless it is the reply of a
 * connection the sandbox accepted. Kernel-made packets (ICMP errors, RSTs of
 * closed ports, IPv6 neighbour discovery) come from per-netns control
 * sockets outside the cgroup and never reach this program. */
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

struct packet {
  __u32 saddr[4]; /* v4-mapped for IPv4 */
  __u32 daddr[4];
  __u16 sport; /* network byte order; 0 when there is no TCP/UDP header */
  __u16 dport;
  __u16 family;
  __u8 protocol; /* IPv4 protocol or IPv6 next header */
  __u8 tcp_flags;
};

/* skb data starts at the IP header in cgroup_skb programs. Fills the
 * addresses, family and protocol; returns the L4 offset (0 when there is no
 * L4 header to read: a later fragment), or -1 when it is not IPv4/IPv6. */
static __always_inline int parse_ip(struct __sk_buff* skb, struct packet* p) {
  __u8 first = 0;
  if (bpf_skb_load_bytes(skb, 0, &first, 1) != 0) return -1;
  if ((first >> 4) == 4) {
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) != 0) return -1;
    p->family = AF_INET;
    p->saddr[2] = V4_MAPPED_PREFIX_NET;
    p->saddr[3] = ip.saddr;
    p->daddr[2] = V4_MAPPED_PREFIX_NET;
    p->daddr[3] = ip.daddr;
    p->protocol = ip.protocol;
    if (ip.frag_off & bpf_htons(0x1fff)) return 0;
    return (first & 0xf) * 4;
  }
  if ((first >> 4) == 6) {
    struct ipv6hdr ip6;
    if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) != 0) return -1;
    p->family = AF_INET6;
    __builtin_memcpy(p->saddr, ip6.saddr.in6_u.u6_addr32, 16);
    __builtin_memcpy(p->daddr, ip6.daddr.in6_u.u6_addr32, 16);
    p->protocol = ip6.nexthdr; /* an extension header (a routing header) leaves no ports */
    return sizeof(ip6);
  }
  return -1;
}

/* Ports and TCP flags, when the packet has a TCP or UDP header at l4. */
static __always_inline void parse_l4(struct __sk_buff* skb, struct packet* p, int l4) {
  if (l4 <= 0) return;
  if (p->protocol == IPPROTO_TCP) {
    __u8 th[14];
    if (bpf_skb_load_bytes(skb, l4, th, sizeof(th)) != 0) return;
    __builtin_memcpy(&p->sport, th, 2);
    __builtin_memcpy(&p->dport, th + 2, 2);
    p->tcp_flags = th[13];
  } else if (p->protocol == IPPROTO_UDP) {
    __u16 ports[2];
    if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) != 0) return;
    p->sport = ports[0];
    p->dport = ports[1];
  }
}

/* A listener's SYN-ACK: skb->sk is the listener, not the request socket.
 * It passes only if a request socket (NEW_SYN_RECV) exists for the reversed
 * tuple, i.e. the packet goes back to the address that sent the SYN. */
static __always_inline int is_synack_of_request(struct __sk_buff* skb, const struct packet* p) {
  if (p->protocol != IPPROTO_TCP ||
      (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST | TCP_FLAG_FIN)) !=
          (TCP_FLAG_SYN | TCP_FLAG_ACK))
    return 0;
  struct bpf_sock_tuple t = {};
  __u32 size;
  if (p->family == AF_INET) {
    t.ipv4.saddr = p->daddr[3];
    t.ipv4.daddr = p->saddr[3];
    t.ipv4.sport = p->dport;
    t.ipv4.dport = p->sport;
    size = sizeof(t.ipv4);
  } else {
    __builtin_memcpy(t.ipv6.saddr, p->daddr, 16);
    __builtin_memcpy(t.ipv6.daddr, p->saddr, 16);
    t.ipv6.sport = p->dport;
    t.ipv6.dport = p->sport;
    size = sizeof(t.ipv6);
  }
  struct bpf_sock* req = bpf_skc_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
  if (!req) return 0;
  int ok = req->state == BPF_TCP_NEW_SYN_RECV;
  bpf_sk_release(req);
  return ok;
}

/* A reply of a server the sandbox exposes: an accepted socket sending to its
 * own peer (a routing header on it would change the first hop: dropped), or
 * a listener's SYN-ACK. */
static __always_inline int is_reply_of_accepted(struct __sk_buff* skb, const struct packet* p) {
  struct bpf_sock* any = skb->sk;
  if (!any) return 0;
  struct bpf_sock* sk = bpf_sk_fullsock(any);
  if (!sk) return 0;
  /* Read every field before branching (see the verifier note at the top). */
  __u32 state = sk->state;
  __u32 peer4 = sk->dst_ip4;
  __u32 peer6[4];
  peer6[0] = sk->dst_ip6[0];
  peer6[1] = sk->dst_ip6[1];
  peer6[2] = sk->dst_ip6[2];
  peer6[3] = sk->dst_ip6[3];
  if (state == BPF_TCP_LISTEN) return is_synack_of_request(skb, p);
  if (!bpf_sk_storage_get(&sock_accepted, sk, 0, 0)) return 0;
  if (p->family == AF_INET) return peer4 == p->daddr[3];
  return peer6[0] == p->daddr[0] && peer6[1] == p->daddr[1] && peer6[2] == p->daddr[2] &&
         peer6[3] == p->daddr[3];
}

SEC("cgroup_skb/egress")
int egressd_egress(struct __sk_buff* skb) {
  struct packet p = {};
  int l4 = parse_ip(skb, &p);
  /* The common case first: to egressd's listeners or the sandbox's own loopback. */
  if (l4 >= 0 && is_loopback(p.daddr)) return 1;
  parse_l4(skb, &p, l4);
  if (l4 >= 0 && is_reply_of_accepted(skb, &p)) return 1;

  /* Not configured yet, unparseable, or going somewhere no hook allowed. */
  struct egressd_sandbox_config* cfg = bpf_get_local_storage(&sandbox_config, 0);
  __u32 id = cfg->sandbox_id;
  if (id != 0 && (cfg->flags & EGRESSD_SANDBOX_AUDIT)) {
    emit_deny(id, EGRESSD_DENY_EGRESS, p.daddr, p.dport, p.family, p.protocol, 0,
              EGRESSD_EVENT_NOT_ENFORCED);
    return 1;
  }
  struct egressd_kernel_counters* c = id ? counters_of(id) : 0;
  if (c) c->egress_dropped += 1;
  emit_deny(id, EGRESSD_DENY_EGRESS, p.daddr, p.dport, p.family, p.protocol, 0, 0);
  return 0;
}
