// One proxy worker: a thread with its own io_uring and its own SO_REUSEPORT
// listeners (127.0.0.1 and ::1 on the proxy port). A connection lives on the
// worker that accepted it. Every completion goes through one switch
// (Worker::Dispatch); user_data carries the object and the operation kind.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/common/unique_fd.h"
#include "userspace/proxy/op_kind.h"
#include "userspace/proxy/proxy_context.h"
#include "userspace/proxy/relay_buffer_pool.h"
#include "userspace/proxy/upstream_pool.h"

namespace egressd::proxy {

class Connection;

struct alignas(kOpAlignment) Listener {
  UniqueFd fd;
  int family = 0;
  __kernel_timespec retry_after{0, 100 * 1000 * 1000};  // back off after accept errors
  bool closing = false;  // a sandbox's listener being removed: closed at its last completion
};

class alignas(kOpAlignment) Worker {
 public:
  Worker(const ProxyContext& ctx, int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  Status Init();  // io_uring and listeners; run on the caller's thread
  void Start();   // runs the loop on a new thread
  void Stop();    // from any thread; joins
  // Arms accept on every listener, present and added later (thread-safe).
  // Until then connections wait in the listen backlog: the daemon calls it
  // once every re-adopted sandbox is known, so none is refused as unknown.
  void StartAccepting();

  // Runs `task` on this worker's thread (thread-safe). Posted from that
  // thread itself, it runs at the end of the current completion batch.
  void Post(std::function<void()> task);
  // Waits on the ring for the answers to a lookup's queries (the resolver
  // sent them for one of this worker's connections), then hands the socket
  // back to the resolver (Resolver::OnWatchDone).
  void WatchDnsAnswer(int fd, uint64_t attempt);
  io_uring_sqe* GetSqe();
  // Makes sure the next `n` GetSqe() calls come from one submission batch.
  void ReserveSqes(unsigned n);
  const ProxyContext& ctx() const { return ctx_; }
  // The relay buffers of this worker's connections.
  RelayBufferPool& buffers() { return buffers_; }
  // Idle upstream connections kept for the next requests (null: none kept).
  UpstreamPool* upstream_pool() const { return ctx_.upstream_pool; }
  // A connection was parked (connection_parking.cc): what it freed may be
  // given back to the system at the next trim.
  void NoteParked() { parked_since_trim_++; }
  // The proxy listeners of a sandbox in a network namespace of its own
  // (thread-safe; the worker owns and closes the fds from here on).
  void AddSandboxListeners(uint32_t sandbox_id, std::vector<int> fds);
  void RemoveSandboxListeners(uint32_t sandbox_id);
  // Called by a connection when its last operation completed after close;
  // the object is freed at the end of the current completion batch.
  void Destroy(Connection* conn);
  Connection* FindConnection(uint64_t id);
  // From any thread: every open tunnel is decided again (Connection::RecheckTunnel).
  void RecheckTunnels();

 private:
  void Run();
  void ArmAccept(Listener& listener);
  void ArmWake();
  void Dispatch(io_uring_cqe* cqe);
  void OnAccept(Listener& listener, int res, uint32_t flags);
  void RunPosted();
  void Retire(Listener* listener);  // closes and frees a closing listener

  const ProxyContext& ctx_;
  int index_;
  io_uring ring_{};
  bool ring_ready_ = false;
  Listener listeners_[2];
  // Per-sandbox listeners (own network namespace), and those being removed.
  std::unordered_map<uint32_t, std::vector<std::unique_ptr<Listener>>> sandbox_listeners_;
  std::unordered_map<Listener*, std::unique_ptr<Listener>> closing_listeners_;
  UniqueFd spare_fd_;  // freed to accept and close connections when out of fds
  UniqueFd wake_fd_;
  uint64_t wake_value_ = 0;
  bool stop_ = false;
  bool accepting_ = false;  // StartAccepting ran: listeners have an accept armed
  std::thread thread_;
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  bool posted_by_self_ = false;  // posted_ holds tasks this thread posted (no wake-up written)
  uint64_t next_conn_id_ = 1;
  RelayBufferPool buffers_;  // declared before the connections: they give buffers back to it
  size_t parked_since_trim_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
  // Connections done during the current completion batch, freed after it.
  std::vector<std::unique_ptr<Connection>> finished_;
};

}  // namespace egressd::proxy
