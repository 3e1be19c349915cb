// The transparent proxy: one Worker per CPU, all listening on the proxy port
// with SO_REUSEPORT.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/proxy/proxy_context.h"

namespace egressd::proxy {

class UpstreamPool;
class Worker;

class Proxy {
 public:
  explicit Proxy(ProxyContext ctx);
  ~Proxy();
  // Listens on the proxy port; connections wait in the backlog until
  // StartAccepting.
  Status Start();
  // Every worker accepts from here on, on its listeners present and future.
  void StartAccepting();
  void Stop();

  // Listeners of a sandbox in its own network namespace: served by one worker
  // (chosen by id), which owns the fds from here on.
  void AddSandboxListeners(uint32_t sandbox_id, std::vector<int> fds);
  void RemoveSandboxListeners(uint32_t sandbox_id);
  // A sandbox's rules changed (thread-safe): tunnels to hosts it denies now close.
  void RecheckTunnels();

 private:
  ProxyContext ctx_;
  std::unique_ptr<UpstreamPool> upstream_pool_;  // outlives the workers
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace egressd::proxy
