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

constexpr auto kQueryLifetime = std::chrono::seconds(10);
constexpr auto kTcpIdle = std::chrono::seconds(10);
// Each relayed query holds a socket until it is answered or expires: bounded
// well below a default descriptor limit (1024), which the proxy shares.
constexpr size_t kMaxOutstanding = 512;
constexpr size_t kMaxOutstandingPerSandbox = 128;  // one sandbox cannot starve the others
constexpr size_t kMaxTcpClientsPerSandbox = 32;
// A query names one question: anything longer than this is not a query we relay.
constexpr size_t kMaxQueryBytes = 4096;

}  // namespace

DnsForwarder::DnsForwarder(sockaddr_storage upstream, const sandbox::SandboxDirectory* sandboxes,
                           audit::EventLog* events)
    : upstream_(upstream), sandboxes_(sandboxes), events_(events) {}

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
    removes_.push_back(sandbox_id);
  }
  Wake();
}

void DnsForwarder::ApplyChanges() {
  std::vector<Pending> adds;
  std::vector<uint32_t> removes;
  {
    std::lock_guard lock(changes_mu_);
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

bool DnsForwarder::OnQuery(uint32_t sandbox_id, std::span<uint8_t> msg, Outstanding where,
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
    bool enforced = audit::DenyOrReport(*view, events_, std::move(event));
    if (enforced) {
      view->counters->dns_refused++;
      refused_++;
      *reply = protocol::BuildDnsNxdomain(msg, *question);
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
  where.expires = std::chrono::steady_clock::now() + kQueryLifetime;
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
    upstream_errors_++;  // no answer: the client retries or times out
    spdlog::debug("dns forwarder: {}", sent.status().ToString());
    return true;
  }
  where.upstream = std::move(*sent);
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
  for (;;) {
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
    s.in.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    if (s.in.size() > kMaxQueryBytes + 2) break;
  }
  s.idle_until = std::chrono::steady_clock::now() + kTcpIdle;
  // Messages are length-prefixed (RFC 1035 4.2.2); several may be pipelined.
  while (s.in.size() >= 2) {
    size_t len = static_cast<uint8_t>(s.in[0]) << 8 | static_cast<uint8_t>(s.in[1]);
    if (len > kMaxQueryBytes) {
      queries_++;
      malformed_++;
      s.fd.Reset();
      return;
    }
    if (s.in.size() < 2 + len) break;
    std::vector<uint8_t> msg(s.in.begin() + 2, s.in.begin() + 2 + static_cast<long>(len));
    s.in.erase(0, 2 + len);
    Outstanding where;
    where.tcp_client = s.client_id;
    std::vector<uint8_t> reply;
    if (!OnQuery(s.sandbox_id, msg, std::move(where), &reply)) {
      s.fd.Reset();  // malformed: this connection is not speaking DNS
      return;
    }
    if (!reply.empty() && !WriteTcp(s, reply)) return;
  }
  if (eof) {
    s.eof = true;
    if (!HasOutstanding(s.client_id)) s.fd.Reset();  // else: after the last answer
  }
}

bool DnsForwarder::HasOutstanding(uint64_t tcp_client) const {
  for (const auto& [id, o] : outstanding_)
    if (o.tcp_client == tcp_client) return true;
  return false;
}

bool DnsForwarder::WriteTcp(Socket& s, std::span<const uint8_t> msg) {
  std::vector<uint8_t> framed(2 + msg.size());
  framed[0] = static_cast<uint8_t>(msg.size() >> 8);
  framed[1] = static_cast<uint8_t>(msg.size() & 0xff);
  memcpy(framed.data() + 2, msg.data(), msg.size());
  // Answers are small; a client that does not read them loses its connection
  // rather than making the forwarder buffer for it.
  ssize_t n = send(s.fd.get(), framed.data(), framed.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
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
  if (!answer) return false;
  std::vector<uint8_t>& buf = *answer;
  buf[0] = static_cast<uint8_t>(o.client_id >> 8);
  buf[1] = static_cast<uint8_t>(o.client_id & 0xff);
  if (o.tcp_client == 0) {
    sendto(o.udp_fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&o.client),
           o.client_len);
    return true;
  }
  const uint64_t client = o.tcp_client;
  for (Socket& s : sockets_)
    if (s.kind == Kind::kTcpClient && s.client_id == client && s.fd.valid()) {
      if (WriteTcp(s, buf)) {
        o.tcp_client = 0;  // answered: no longer keeps the connection open
        if (s.eof && !HasOutstanding(client)) s.fd.Reset();
      }
      break;
    }
  return true;
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
    int n = poll(fds.data(), fds.size(), 1000);
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
    std::erase_if(outstanding_, [&](const auto& kv) { return kv.second.expires < now; });
  }
}

}  // namespace egressd::dns
