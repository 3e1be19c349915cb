#include "userspace/dns/dns_forwarder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "userspace/audit/denial.h"
#include "userspace/dns/resolver.h"
#include "userspace/protocol/dns_message.h"

namespace egressd::dns {
namespace {

constexpr auto kTcpIdle = std::chrono::seconds(10);
// Each relayed query holds a socket until it is answered or expires: bounded
// well below a default descriptor limit (1024), which the proxy shares.
constexpr size_t kMaxOutstanding = 512;
constexpr size_t kMaxOutstandingPerSandbox = 128;  // one sandbox cannot starve the others
constexpr size_t kMaxTcpClientsPerSandbox = 32;

// The EXTRA-TEXT of a denied name's answer (RFC 8914): which policy, why,
// and the event to look for in `egressctl events`.
std::string BlockedText(const sandbox::SandboxView& view, const policy::HostDecision& decision,
                        uint64_t seq) {
  std::string text =
      "egressd: denied by policy \"" + view.policy->name() + "\": " + decision.reason;
  if (seq != 0) text += " (event " + std::to_string(seq) + ")";
  return text;
}

}  // namespace

DnsForwarder::DnsForwarder(sockaddr_storage upstream, std::chrono::seconds query_timeout,
                           const sandbox::SandboxDirectory* sandboxes, audit::EventLog* events)
    : upstream_(upstream), query_timeout_(query_timeout), sandboxes_(sandboxes), events_(events) {}

DnsForwarder::~DnsForwarder() {
  Stop();
}

Status DnsForwarder::Start() {
  // Every query has a socket of its own; this one only checks the address now.
  UniqueFd probe(socket(upstream_.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  socklen_t len = upstream_.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (!probe.valid() ||
      connect(probe.get(), reinterpret_cast<const sockaddr*>(&upstream_), len) != 0)
    return EGRESSD_ERROR("DNS upstream {}: {}", FormatSocketAddress(upstream_), strerror(errno));
  wake_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_.valid()) return EGRESSD_ERROR("eventfd: {}", strerror(errno));
  thread_ = std::thread([this] { Run(); });
  return {};
}

void DnsForwarder::Stop() {
  if (stop_.exchange(true)) return;
  Wake();
  if (thread_.joinable()) thread_.join();
}

void DnsForwarder::Wake() {
  if (!wake_fd_.valid()) return;
  uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof(one));
}

void DnsForwarder::AddSandbox(uint32_t sandbox_id, std::vector<UniqueFd> udp,
                              std::vector<UniqueFd> tcp) {
  {
    std::lock_guard lock(changes_mu_);
    adds_.push_back({sandbox_id, std::move(udp), std::move(tcp)});
  }
  Wake();
}

void DnsForwarder::RemoveSandbox(uint32_t sandbox_id) {
  {
    std::lock_guard lock(changes_mu_);
    // Sockets of it not taken yet are closed here, never served after.
    std::erase_if(adds_, [&](const Pending& p) { return p.sandbox_id == sandbox_id; });
    removes_.push_back(sandbox_id);
  }
  Wake();
}

void DnsForwarder::StartServing() {
  {
    std::lock_guard lock(changes_mu_);
    serving_ = true;
  }
  Wake();
}

void DnsForwarder::ApplyChanges() {
  std::vector<Pending> adds;
  std::vector<uint32_t> removes;
  {
    std::lock_guard lock(changes_mu_);
    if (!serving_) return;
    adds.swap(adds_);
    removes.swap(removes_);
  }
  // Removes first: an id detached and re-attached in one batch keeps its new sockets.
  for (uint32_t id : removes) {
    std::erase_if(sockets_, [&](const Socket& s) { return s.sandbox_id == id; });
    std::erase_if(outstanding_, [&](const auto& kv) { return kv.second.sandbox_id == id; });
  }
  for (Pending& p : adds) {
    for (UniqueFd& fd : p.udp)
      if (fd.valid()) sockets_.push_back({std::move(fd), p.sandbox_id, Kind::kUdp});
    for (UniqueFd& fd : p.tcp) {
      if (!fd.valid()) continue;
      int flags = fcntl(fd.get(), F_GETFL);
      fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
      sockets_.push_back({std::move(fd), p.sandbox_id, Kind::kTcpListener});
    }
  }
}

bool DnsForwarder::OnQuery(uint32_t sandbox_id, std::span<const uint8_t> msg, Outstanding where,
                           std::vector<uint8_t>* reply) {
  queries_++;
  std::string error;
  auto question = protocol::ParseDnsQuery(msg, &error);
  if (!question) {
    malformed_++;
    return false;  // dropped: nothing reaches the upstream
  }
  auto view = sandboxes_->Find(sandbox_id);
  if (!view) return true;  // detached meanwhile (or no policy): no answer, fail closed
  view->counters->dns_queries++;
  if (view->audit()) view->observed->Host(question->name);
  policy::HostDecision decision = view->policy->DecideHost(question->name);
  if (decision.verdict == policy::HostVerdict::kDenied) {
    audit::AuditEvent event;
    event.layer = "dns";
    event.port = 53;
    event.host = question->name;
    event.reason = decision.reason;
    uint64_t seq = 0;
    bool enforced = audit::DenyOrReport(*view, events_, std::move(event), &seq);
    if (enforced) {
      view->counters->dns_refused++;
      refused_++;
      *reply = protocol::BuildDnsBlocked(msg, *question, BlockedText(*view, decision, seq));
      return true;
    }
  }
  size_t mine = 0;
  for (const auto& [id, o] : outstanding_) mine += o.sandbox_id == sandbox_id;
  if (outstanding_.size() >= kMaxOutstanding || mine >= kMaxOutstandingPerSandbox) {
    overloaded_++;
    return true;  // the client retries or times out
  }
  where.sandbox_id = sandbox_id;
  where.client_id = question->id;
  where.expires = std::chrono::steady_clock::now() + query_timeout_;
  // Only the header and the question go upstream: records a sandbox appends
  // (EDNS options, anything in the other sections) could carry its data. An
  // EDNS client (anything in its additional section) and every TCP client get
  // an OPT record of ours instead, so answers past 512 bytes still fit.
  const bool client_edns = (msg[10] | msg[11]) != 0 || where.tcp_client != 0;
  std::vector<uint8_t> relayed(msg.begin(),
                               msg.begin() + static_cast<long>(question->question_end));
  for (size_t i = 6; i < 12; ++i) relayed[i] = 0;  // ANCOUNT, NSCOUNT, ARCOUNT
  if (client_edns) {
    const uint16_t payload = where.tcp_client != 0 ? 4096 : 1232;
    // Root name, TYPE OPT (41), CLASS = UDP payload size, TTL 0 (no flags), RDLEN 0.
    const uint8_t opt[] = {
        0, 0, 41, static_cast<uint8_t>(payload >> 8), static_cast<uint8_t>(payload & 0xff), 0, 0, 0,
        0, 0, 0};
    relayed.insert(relayed.end(), std::begin(opt), std::end(opt));
    relayed[11] = 1;  // ARCOUNT
  }
  auto sent = UpstreamQuery::Send(upstream_, std::move(relayed));  // gets a random id
  if (!sent.ok()) {
    upstream_errors_++;
    *reply = UpstreamFailed(sandbox_id, msg, *question, protocol::DnsExtendedError::kNetworkError,
                            sent.status().ToString());
    return true;
  }
  where.upstream = std::move(*sent);
  where.query.assign(msg.begin(), msg.end());
  where.question = std::move(*question);
  outstanding_.emplace(next_serial_++, std::move(where));
  return true;
}

void DnsForwarder::OnUdp(Socket& s) {
  uint8_t buf[kMaxQueryBytes];
  for (int budget = 0; budget < 64; ++budget) {
    sockaddr_storage client{};
    socklen_t client_len = sizeof(client);
    ssize_t n = recvfrom(s.fd.get(), buf, sizeof(buf), MSG_TRUNC,
                         reinterpret_cast<sockaddr*>(&client), &client_len);
    if (n < 0) return;
    if (static_cast<size_t>(n) > sizeof(buf)) {
      queries_++;
      malformed_++;
      continue;
    }
    Outstanding where;
    where.udp_fd = s.fd.get();
    where.client = client;
    where.client_len = client_len;
    std::vector<uint8_t> reply;
    OnQuery(s.sandbox_id, {buf, static_cast<size_t>(n)}, std::move(where), &reply);
    if (!reply.empty())
      sendto(s.fd.get(), reply.data(), reply.size(), 0, reinterpret_cast<const sockaddr*>(&client),
             client_len);
  }
}

void DnsForwarder::OnAccept(Socket& s, std::vector<Socket>* accepted) {
  for (int budget = 0; budget < 16; ++budget) {  // then the other sockets get their turn
    UniqueFd fd(accept4(s.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) return;
    size_t clients = 0;
    for (const Socket& other : sockets_)
      if (other.kind == Kind::kTcpClient && other.sandbox_id == s.sandbox_id) ++clients;
    for (const Socket& other : *accepted)
      if (other.sandbox_id == s.sandbox_id) ++clients;
    if (clients >= kMaxTcpClientsPerSandbox) {
      overloaded_++;
      continue;  // closed: the sandbox has enough open DNS connections
    }
    Socket client{std::move(fd), s.sandbox_id, Kind::kTcpClient};
    client.client_id = next_client_id_++;
    client.idle_until = std::chrono::steady_clock::now() + kTcpIdle;
    accepted->push_back(std::move(client));
  }
}

void DnsForwarder::OnTcpData(Socket& s) {
  uint8_t buf[4096];
  bool eof = false;
  for (int budget = 0; budget < 16; ++budget) {  // then the other sockets get their turn
    ssize_t n = recv(s.fd.get(), buf, sizeof(buf), 0);
    if (n == 0) {
      eof = true;  // a client may send its queries, then shut down its side
      break;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      s.fd.Reset();  // broken
      return;
    }
    if (n < 0) break;
    s.idle_until = std::chrono::steady_clock::now() + kTcpIdle;
    if (!OnTcpBytes(s, {buf, static_cast<size_t>(n)})) return;
  }
  if (eof) {
    s.eof = true;
    if (!HasOutstanding(s.client_id)) s.fd.Reset();  // else: after the last answer
  }
}

bool DnsForwarder::OnTcpBytes(Socket& s, std::span<const uint8_t> data) {
  // Messages are length-prefixed (RFC 1035 4.2.2); several may be pipelined.
  for (;;) {
    const auto step = s.framer.Feed(data);
    data = data.subspan(step.consumed);
    if (step.event == protocol::DnsTcpFramer::Event::kNeedMore) return true;
    if (step.event == protocol::DnsTcpFramer::Event::kError) {
      queries_++;
      malformed_++;
      spdlog::debug("dns forwarder: TCP client of sandbox {}: {}", s.sandbox_id, s.framer.error());
      s.fd.Reset();
      return false;
    }
    Outstanding where;
    where.tcp_client = s.client_id;
    std::vector<uint8_t> reply;
    if (!OnQuery(s.sandbox_id, s.framer.message(), std::move(where), &reply)) {
      s.fd.Reset();  // malformed: this connection is not speaking DNS
      return false;
    }
    if (!reply.empty() && !WriteTcp(s, reply)) return false;
  }
}

bool DnsForwarder::HasOutstanding(uint64_t tcp_client) const {
  for (const auto& [id, o] : outstanding_)
    if (o.tcp_client == tcp_client) return true;
  return false;
}

bool DnsForwarder::WriteTcp(Socket& s, std::span<const uint8_t> msg) {
  const std::vector<uint8_t> framed = protocol::FrameDnsTcpMessage(msg);
  // Answers are small; a client that does not read them loses its connection
  // rather than making the forwarder buffer for it.
  ssize_t n = framed.empty()
                  ? -1
                  : send(s.fd.get(), framed.data(), framed.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(framed.size())) {
    s.fd.Reset();
    return false;
  }
  return true;
}

bool DnsForwarder::OnResponse(Outstanding& o) {
  uint64_t mismatched = 0;
  auto answer = o.upstream.Receive(&mismatched);
  upstream_mismatched_ += mismatched;
  if (!answer) {
    if (o.upstream.error() == 0) return false;  // keeps waiting
    // The upstream's port is closed (ICMP port unreachable) or it cannot be
    // reached: no answer will come, so the client need not wait for one.
    Deliver(o, UpstreamFailed(o.sandbox_id, o.query, o.question,
                              protocol::DnsExtendedError::kNetworkError,
                              fmt::format("refused the query ({})", strerror(o.upstream.error()))));
    return true;
  }
  if (upstream_failing_) {
    spdlog::info("dns forwarder: upstream {} answers again", FormatSocketAddress(upstream_));
    upstream_failing_ = false;
  }
  std::vector<uint8_t>& buf = *answer;
  buf[0] = static_cast<uint8_t>(o.client_id >> 8);
  buf[1] = static_cast<uint8_t>(o.client_id & 0xff);
  Deliver(o, buf);
  return true;
}

void DnsForwarder::Deliver(Outstanding& o, std::span<const uint8_t> answer) {
  if (o.tcp_client == 0) {
    sendto(o.udp_fd, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&o.client),
           o.client_len);
    return;
  }
  const uint64_t client = o.tcp_client;
  for (Socket& s : sockets_)
    if (s.kind == Kind::kTcpClient && s.client_id == client && s.fd.valid()) {
      if (WriteTcp(s, answer)) {
        o.tcp_client = 0;  // answered: no longer keeps the connection open
        if (s.eof && !HasOutstanding(client)) s.fd.Reset();
      }
      break;
    }
}

std::vector<uint8_t> DnsForwarder::UpstreamFailed(uint32_t sandbox_id,
                                                  std::span<const uint8_t> query,
                                                  const protocol::DnsQuestion& question,
                                                  protocol::DnsExtendedError code,
                                                  const std::string& why) {
  servfail_++;
  if (auto view = sandboxes_->Find(sandbox_id)) view->counters->dns_servfail++;
  if (!upstream_failing_)
    spdlog::warn("dns forwarder: upstream {} {}: sandboxes get SERVFAIL until it answers",
                 FormatSocketAddress(upstream_), why);
  upstream_failing_ = true;
  spdlog::debug("dns forwarder: SERVFAIL for sandbox {} name {}: upstream {}", sandbox_id,
                question.name, why);
  return protocol::BuildDnsServfail(query, question, code, "egressd: upstream resolver " + why);
}

int DnsForwarder::PollTimeoutMs(int cap) const {
  const auto now = std::chrono::steady_clock::now();
  int ms = cap;
  for (const auto& [serial, o] : outstanding_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(o.expires - now).count();
    ms = std::min<int>(ms, static_cast<int>(std::max<int64_t>(0, left + 1)));
  }
  return ms;
}

void DnsForwarder::Run() {
  std::vector<pollfd> fds;
  while (!stop_) {
    ApplyChanges();
    fds.clear();
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    for (const Socket& s : sockets_)
      fds.push_back({s.fd.get(), static_cast<short>(s.eof ? 0 : POLLIN), 0});
    std::vector<uint64_t> queries;  // the serial of each upstream socket polled, in order
    for (const auto& [serial, o] : outstanding_) {
      fds.push_back({o.upstream.fd(), POLLIN, 0});
      queries.push_back(serial);
    }
    int n = poll(fds.data(), fds.size(), PollTimeoutMs(1000));
    if (n < 0 && errno != EINTR) {
      spdlog::error("dns forwarder: poll: {}", strerror(errno));
      break;
    }
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      (void)!read(wake_fd_.get(), &v, sizeof(v));
    }
    const size_t first_query = 1 + sockets_.size();
    for (size_t i = 0; i < queries.size(); ++i) {
      if (!(fds[first_query + i].revents & (POLLIN | POLLERR))) continue;
      auto it = outstanding_.find(queries[i]);
      if (it != outstanding_.end() && OnResponse(it->second)) outstanding_.erase(it);
    }
    std::vector<Socket> accepted;
    for (size_t i = 0; i < sockets_.size(); ++i) {
      if (!(fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Socket& s = sockets_[i];
      if (!s.fd.valid()) continue;
      switch (s.kind) {
        case Kind::kUdp:
          OnUdp(s);
          break;
        case Kind::kTcpListener:
          OnAccept(s, &accepted);
          break;
        case Kind::kTcpClient:
          if (s.eof)
            s.fd.Reset();  // gone entirely while its answers were pending
          else
            OnTcpData(s);
          break;
      }
    }
    auto now = std::chrono::steady_clock::now();
    for (Socket& s : sockets_)
      if (s.kind == Kind::kTcpClient && s.idle_until < now) s.fd.Reset();
    std::erase_if(sockets_, [](const Socket& s) { return !s.fd.valid(); });
    for (Socket& s : accepted) sockets_.push_back(std::move(s));
    // No answer in time: the client gets SERVFAIL rather than silence.
    for (auto it = outstanding_.begin(); it != outstanding_.end();) {
      if (it->second.expires > now) {
        ++it;
        continue;
      }
      const std::string why =
          fmt::format("did not answer within {} s (--dns-timeout)", query_timeout_.count());
      Deliver(it->second,
              UpstreamFailed(it->second.sandbox_id, it->second.query, it->second.question,
                             protocol::DnsExtendedError::kNoReachableAuthority, why));
      it = outstanding_.erase(it);
    }
  }
}

}  // namespace egressd::dns
