#include "userspace/proxy/proxy.h"

#include <thread>

#include "userspace/proxy/upstream_pool.h"
#include "userspace/proxy/worker.h"

namespace egressd::proxy {

Proxy::Proxy(ProxyContext ctx)
    : ctx_(std::move(ctx)),
      upstream_pool_(std::make_unique<UpstreamPool>(ctx_.counters ? &ctx_.counters->pooled_upstreams
                                                                  : nullptr)) {
  ctx_.upstream_pool = upstream_pool_.get();
}

Proxy::~Proxy() {
  Stop();
}

Status Proxy::Start() {
  int n = ctx_.options.workers > 0
              ? ctx_.options.workers
              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) {
    auto worker = std::make_unique<Worker>(ctx_, i);
    EGRESSD_RETURN_IF_ERROR(worker->Init());
    workers_.push_back(std::move(worker));
  }
  for (auto& w : workers_) w->Start();
  return {};
}

void Proxy::StartAccepting() {
  for (auto& w : workers_) w->StartAccepting();
}

void Proxy::AddSandboxListeners(uint32_t sandbox_id, std::vector<int> fds) {
  if (workers_.empty()) {
    for (int fd : fds) close(fd);
    return;
  }
  workers_[sandbox_id % workers_.size()]->AddSandboxListeners(sandbox_id, std::move(fds));
}

void Proxy::RemoveSandboxListeners(uint32_t sandbox_id) {
  if (!workers_.empty()) workers_[sandbox_id % workers_.size()]->RemoveSandboxListeners(sandbox_id);
}

void Proxy::RecheckTunnels() {
  for (auto& w : workers_) w->RecheckTunnels();
}

void Proxy::Stop() {
  for (auto& w : workers_) w->Stop();
  workers_.clear();
  upstream_pool_->Clear();
}

}  // namespace egressd::proxy
