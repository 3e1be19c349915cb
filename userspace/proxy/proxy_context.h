// Everything a proxy worker needs from the rest of the daemon. Owned by the
// daemon; outlives the workers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "userspace/audit/event_log.h"
#include "userspace/dns/resolver.h"
#include "userspace/kernel/bpf_programs.h"
#include "userspace/proxy/host_addresses.h"
#include "userspace/sandbox/sandbox_view.h"
#include "userspace/tls/tls_client_context.h"
#include "userspace/tls/tls_server_context.h"

namespace egressd::secrets {
class SecretStore;
}

namespace egressd::proxy {

class UpstreamPool;

// Counters not tied to a sandbox (the sandbox is not known yet or is gone).
struct ProxyGlobalCounters {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> unknown_origin{0};   // no original destination recorded: refused
  std::atomic<uint64_t> unknown_sandbox{0};  // original destination names a detached sandbox
  // Out of file descriptors or memory (resource_shortage.h): accepts that
  // failed, connections closed at accept for want of an fd, upstream sockets
  // that could not be made (502).
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<uint64_t> refused_no_fd{0};
  std::atomic<uint64_t> upstream_socket_errors{0};
  // Relay buffers that could not be mapped: the connection closed or 502.
  std::atomic<uint64_t> buffer_errors{0};
  // Idle connections holding no relay buffer now (connection_parking.cc).
  std::atomic<int64_t> parked_connections{0};
  // Intercepted connections' handshakes with their upstreams, resumed
  // (a session of UpstreamSessionCache) or full (certificate verified).
  std::atomic<uint64_t> upstream_tls_resumed{0};
  std::atomic<uint64_t> upstream_tls_full{0};
  // Requests sent on an upstream connection another client connection left
  // in its worker's pool, and the connections pooled now (upstream_pool.h).
  std::atomic<uint64_t> upstream_reused{0};
  std::atomic<int64_t> pooled_upstreams{0};
  // Requests sent again on a new connection after their pooled upstream
  // closed before any byte of the response (HttpSession::ResendOnNewUpstream).
  std::atomic<uint64_t> requests_resent{0};
  // Relay buffers mapped now, every worker's: held by connections or kept
  // for the next ones (relay_buffer_pool.h).
  std::atomic<int64_t> relay_buffers{0};
};

struct ProxyOptions {
  uint16_t proxy_port = 15001;
  int workers = 0;                                   // 0 = one per CPU
  std::chrono::milliseconds connect_timeout{10000};  // upstream connect (and TLS handshake)
  // --header-timeout: the first bytes of a connection (ClientHello or request
  // line), an intercepted handshake, and every request head from its first byte.
  std::chrono::milliseconds head_timeout{30000};
  std::chrono::milliseconds response_timeout{300000};  // complete request -> first response byte
  std::chrono::milliseconds idle_timeout{300000};      // no byte either way, in any phase
  size_t buffer_bytes = 256 * 1024;             // per direction per connection (touched lazily)
  uint64_t max_connections_per_sandbox = 4096;  // open at once; more are refused at accept
  // --metrics-listen's port (0: off): never an upstream (OwnListeners).
  uint16_t metrics_port = 0;
};

struct ProxyContext {
  ProxyOptions options;
  const kernel::BpfPrograms* bpf = nullptr;
  const sandbox::SandboxDirectory* sandboxes = nullptr;
  dns::Resolver* resolver = nullptr;
  ProxyGlobalCounters* counters = nullptr;
  audit::EventLog* events = nullptr;           // every deny is recorded here
  const AddressSet* host_addresses = nullptr;  // never upstreams of netns sandboxes
  // Interception (tls.intercept): the sandbox-facing TLS server (leaves come
  // from each sandbox's CA) and the verified upstream client. Built at start.
  std::shared_ptr<const tls::TlsServerContext> tls_server;
  std::shared_ptr<const tls::TlsClientContext> tls_client;
  // Handlers' secrets: take a snapshot (secrets->Current() or ForInstance),
  // never read files on a worker. Owned by the daemon.
  const secrets::SecretStore* secrets = nullptr;
  // Idle upstream connections shared by the workers; the Proxy makes it.
  UpstreamPool* upstream_pool = nullptr;
};

}  // namespace egressd::proxy
