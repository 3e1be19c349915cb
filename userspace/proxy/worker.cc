#include "userspace/proxy/worker.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "userspace/common/loopback_socket.h"
#include "userspace/proxy/connection.h"
#include "userspace/proxy/resource_shortage.h"

namespace egressd::proxy {

// Their pointers go in user_data beside an OpKind.
static_assert(alignof(Connection) >= kOpAlignment && alignof(Worker) >= kOpAlignment &&
              alignof(Listener) >= kOpAlignment);

namespace {

constexpr unsigned kRingEntries = 4096;
// Out of descriptors: at most this many waiting connections are closed in one go.
constexpr size_t kRefuseBatch = 256;
// Returned relay buffers a worker keeps mapped for its next connections:
// at least this many after a trim, at most this many ever.
constexpr size_t kKeptRelayBuffersMin = 16;
constexpr size_t kKeptRelayBuffersMax = 4096;
// How often unneeded kept buffers are unmapped (RelayBufferPool::Trim).
constexpr auto kBufferTrimPeriod = std::chrono::seconds(1);
// Parked connections in a trim period past which the heap is trimmed too.
constexpr size_t kParkedBeforeHeapTrim = 64;

// The worker whose loop runs on this thread (Post from it needs no wake-up).
thread_local const Worker* current_worker = nullptr;

}  // namespace

Worker::Worker(const ProxyContext& ctx, int index)
    : ctx_(ctx),
      index_(index),
      buffers_(ctx.options.buffer_bytes, kKeptRelayBuffersMin, kKeptRelayBuffersMax,
               ctx.counters ? &ctx.counters->relay_buffers : nullptr) {}

Worker::~Worker() {
  Stop();
  conns_.clear();
  finished_.clear();
  // Listener and wake fds close with their owners, after the ring.
  if (ring_ready_) io_uring_queue_exit(&ring_);
}

Status Worker::Init() {
  io_uring_params params{};
  params.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  int err = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  if (err < 0) {
    params.flags = 0;  // older kernels: plain ring
    err = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  }
  if (err < 0) return EGRESSD_ERROR("io_uring setup: {}", strerror(-err));
  ring_ready_ = true;
  int families[2] = {AF_INET, AF_INET6};
  for (int i = 0; i < 2; ++i) {
    auto fd = BindLoopback(families[i], SOCK_STREAM, ctx_.options.proxy_port, /*reuse_port=*/true);
    if (!fd.ok()) return fd.status();
    listeners_[i].fd.Reset(*fd);
    listeners_[i].family = families[i];
  }
  spare_fd_ = OpenSpareFd();
  if (!spare_fd_.valid()) return EGRESSD_ERROR("spare fd (/dev/null): {}", strerror(errno));
  wake_fd_.Reset(eventfd(0, EFD_CLOEXEC));
  if (!wake_fd_.valid()) return EGRESSD_ERROR("eventfd: {}", strerror(errno));
  ArmWake();  // accept is armed by StartAccepting
  io_uring_submit(&ring_);
  return {};
}

void Worker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Worker::Stop() {
  if (!thread_.joinable()) return;
  Post([this] { stop_ = true; });
  thread_.join();
}

void Worker::StartAccepting() {
  Post([this] {
    if (accepting_) return;
    accepting_ = true;
    for (Listener& l : listeners_) ArmAccept(l);
    for (auto& [id, list] : sandbox_listeners_)
      for (auto& l : list) ArmAccept(*l);
  });
}

void Worker::Post(std::function<void()> task) {
  const bool from_self = current_worker == this;
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(task));
    if (from_self) posted_by_self_ = true;
  }
  if (from_self) return;  // Run runs it at the end of this batch
  uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof(one));
}

void Worker::WatchDnsAnswer(int fd, uint64_t attempt) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_poll_add(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, attempt << kOpKindBits | static_cast<uint64_t>(OpKind::kDnsAnswer));
}

io_uring_sqe* Worker::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Worker::ReserveSqes(unsigned n) {
  if (io_uring_sq_space_left(&ring_) < n) io_uring_submit(&ring_);
}

void Worker::ArmAccept(Listener& listener) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_multishot_accept(sqe, listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, EncodeOp(&listener, OpKind::kAccept));
}

void Worker::ArmWake() {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, wake_fd_.get(), &wake_value_, sizeof(wake_value_), 0);
  io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kWake));
}

Connection* Worker::FindConnection(uint64_t id) {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.get();
}

void Worker::RecheckTunnels() {
  Post([this] {
    // By id: a connection closed here leaves conns_ while we go through it.
    std::vector<uint64_t> ids;
    ids.reserve(conns_.size());
    for (const auto& [id, conn] : conns_) ids.push_back(id);
    for (uint64_t id : ids)
      if (Connection* conn = FindConnection(id)) conn->RecheckTunnel();
  });
}

void Worker::Destroy(Connection* conn) {
  // Freed at the end of the completion batch: the connection's own call
  // chain may still be on the stack. It is no longer found by id from here.
  auto it = conns_.find(conn->id());
  if (it == conns_.end()) return;
  finished_.push_back(std::move(it->second));
  conns_.erase(it);
}

void Worker::AddSandboxListeners(uint32_t sandbox_id, std::vector<int> fds) {
  Post([this, sandbox_id, fds = std::move(fds)] {
    auto& list = sandbox_listeners_[sandbox_id];
    for (int fd : fds) {
      auto l = std::make_unique<Listener>();
      l->fd.Reset(fd);
      if (accepting_) ArmAccept(*l);  // otherwise StartAccepting arms it
      list.push_back(std::move(l));
    }
  });
}

void Worker::RemoveSandboxListeners(uint32_t sandbox_id) {
  Post([this, sandbox_id] {
    auto it = sandbox_listeners_.find(sandbox_id);
    if (it == sandbox_listeners_.end()) return;
    if (!accepting_) {  // no accept to cancel: the listeners close right here
      sandbox_listeners_.erase(it);
      return;
    }
    for (auto& l : it->second) {
      // The accept (or its retry timer) completes once more, then it is freed.
      l->closing = true;
      io_uring_sqe* sqe = GetSqe();
      io_uring_prep_cancel64(sqe, EncodeOp(l.get(), OpKind::kAccept), 0);
      io_uring_sqe_set_data64(sqe, EncodeOp(this, OpKind::kListenerCancel));
      Listener* raw = l.get();
      closing_listeners_.emplace(raw, std::move(l));
    }
    sandbox_listeners_.erase(it);
  });
}

void Worker::Retire(Listener* listener) {
  auto it = closing_listeners_.find(listener);
  if (it == closing_listeners_.end()) return;
  closing_listeners_.erase(it);
}

void Worker::OnAccept(Listener& listener, int res, uint32_t flags) {
  if (listener.closing) {
    if (res >= 0) close(res);  // the sandbox is gone: nobody decides for this connection
    if (!(flags & IORING_CQE_F_MORE)) Retire(&listener);
    return;
  }
  if (res < 0) {
    if (IsResourceShortage(-res)) {
      ctx_.counters->accept_errors++;
      WarnResourceShortage(*ctx_.counters, std::string("accept: ") + strerror(-res));
    } else if (res != -ECANCELED) {
      spdlog::warn("proxy: accept: {}", strerror(-res));
    }
    if (flags & IORING_CQE_F_MORE || stop_) return;
    // Out of fds: idle upstreams kept for reuse go first (accepting again
    // at once); then the waiting connections are closed with the spare fd's
    // help, and accepting goes on. Otherwise (or no spare) wait a little
    // before accepting again instead of spinning; pending connections stay
    // in the backlog meanwhile.
    if ((res == -EMFILE || res == -ENFILE) && upstream_pool() && upstream_pool()->size() > 0) {
      upstream_pool()->Clear();
      ArmAccept(listener);
      return;
    }
    if ((res == -EMFILE || res == -ENFILE) && spare_fd_.valid()) {
      size_t refused =
          RefuseWaitingConnections(listener.fd.get(), spare_fd_, *ctx_.bpf, kRefuseBatch);
      ctx_.counters->refused_no_fd += refused;
      if (refused > 0 && spare_fd_.valid()) {
        ArmAccept(listener);
        return;
      }
    }
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_timeout(sqe, &listener.retry_after, 0, 0);
    io_uring_sqe_set_data64(sqe, EncodeOp(&listener, OpKind::kAcceptRetry));
    return;
  }
  if (!(flags & IORING_CQE_F_MORE)) ArmAccept(listener);  // multishot ended: re-arm
  if (!spare_fd_.valid()) spare_fd_ = OpenSpareFd();      // lost while out of fds
  ctx_.counters->accepted++;
  uint64_t id = next_conn_id_++;
  auto conn = std::make_unique<Connection>(*this, id, res);
  Connection* raw = conn.get();
  conns_.emplace(id, std::move(conn));
  raw->Start();
}

void Worker::RunPosted() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(posted_mu_);
    tasks.swap(posted_);
  }
  for (auto& t : tasks) t();
}

void Worker::Dispatch(io_uring_cqe* cqe) {
  uint64_t data = io_uring_cqe_get_data64(cqe);
  auto kind = static_cast<OpKind>(data & kOpKindMask);
  void* ptr = reinterpret_cast<void*>(data & ~kOpKindMask);
  switch (kind) {
    case OpKind::kDnsAnswer:
      // Readable, shut down or cancelled: the resolver reads or closes.
      ctx_.resolver->OnWatchDone(data >> kOpKindBits);
      break;
    case OpKind::kAccept:
      OnAccept(*static_cast<Listener*>(ptr), cqe->res, cqe->flags);
      break;
    case OpKind::kAcceptRetry: {
      auto* listener = static_cast<Listener*>(ptr);
      if (listener->closing)
        Retire(listener);
      else if (!stop_) {
        if (!spare_fd_.valid()) spare_fd_ = OpenSpareFd();  // lost while out of fds
        ArmAccept(*listener);
      }
      break;
    }
    case OpKind::kListenerCancel:
      break;
    case OpKind::kWake:
      RunPosted();
      if (!stop_) ArmWake();
      break;
    default:
      static_cast<Connection*>(ptr)->OnCompletion(kind, cqe->res, cqe->flags);
      break;
  }
}

void Worker::Run() {
  spdlog::debug("proxy worker {} running", index_);
  current_worker = this;
  auto next_trim = std::chrono::steady_clock::now() + kBufferTrimPeriod;
  while (!stop_) {
    // Wakes at least every trim period, busy or not.
    __kernel_timespec wait = {.tv_sec = kBufferTrimPeriod.count(), .tv_nsec = 0};
    io_uring_cqe* first = nullptr;
    io_uring_submit_and_wait_timeout(&ring_, &first, 1, &wait, nullptr);
    if (auto now = std::chrono::steady_clock::now(); now >= next_trim) {
      buffers_.Trim();
      if (UpstreamPool* pool = upstream_pool()) pool->Expire(now);
      // What many connections freed as they parked (parsers, the last
      // request's headers) lies between live objects: glibc gives free pages
      // in the middle of its heaps back only through malloc_trim.
      if (parked_since_trim_ >= kParkedBeforeHeapTrim) malloc_trim(0);
      parked_since_trim_ = 0;
      next_trim = now + kBufferTrimPeriod;
    }
    io_uring_cqe* cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      // A kernel without IORING_FEAT_EXT_ARG gets the wait's timeout as an
      // operation of liburing's own: not ours to dispatch.
      if (cqe->user_data != LIBURING_UDATA_TIMEOUT) Dispatch(cqe);
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    // Tasks this thread posted during the batch (a lookup answered here).
    while (posted_by_self_) {
      posted_by_self_ = false;
      RunPosted();
    }
    finished_.clear();
  }
}

}  // namespace egressd::proxy
