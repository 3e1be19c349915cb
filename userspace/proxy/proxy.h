// The transparent proxy: one Worker per CPU, all listening on the proxy port
// with SO_REUSEPORT.
#pragma once

#include <memory>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/proxy/proxy_context.h"

namespace egressd::proxy {

class Worker;

class Proxy {
 public:
  explicit Proxy(ProxyContext ctx);
  ~Proxy();
  Status Start();
  void Stop();

 private:
  ProxyContext ctx_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace egressd::proxy
