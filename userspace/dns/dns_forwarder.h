// The DNS forwarder sandboxes reach: the kernel redirects their DNS traffic
// (UDP and TCP port 53, to any address) to the sandbox's own DNS listeners,
// so the listener a query arrives on says which sandbox asked. Each query is
// decided by that sandbox's policy, like a host: allowed names are relayed to
// the upstream resolver (a random id and source port per query, and only the
// answer that matches: upstream_query.h), denied names get NXDOMAIN, so data
// cannot leave in the names a sandbox looks up. Malformed queries are dropped
// and counted. A relayed query the upstream refuses (ICMP port unreachable),
// that cannot be sent, or that gets no answer within the query timeout is
// answered SERVFAIL (with an Extended DNS Error when the client speaks EDNS),
// so a client learns at once instead of timing out. One thread, poll(): DNS
// is small and the policy check cheap.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "userspace/audit/event_log.h"
#include "userspace/common/status.h"
#include "userspace/common/unique_fd.h"
#include "userspace/dns/upstream_query.h"
#include "userspace/protocol/dns_message.h"
#include "userspace/protocol/dns_tcp_framing.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::dns {

class DnsForwarder {
 public:
  // `query_timeout`: how long a relayed query waits for the upstream's
  // answer before the client gets SERVFAIL (--dns-timeout).
  DnsForwarder(sockaddr_storage upstream, std::chrono::seconds query_timeout,
               const sandbox::SandboxDirectory* sandboxes, audit::EventLog* events);
  ~DnsForwarder();
  Status Start();
  void Stop();

  // Thread-safe. The forwarder owns the sockets from here on (invalid ones
  // are skipped); queries on them are decided by sandbox `sandbox_id`.
  void AddSandbox(uint32_t sandbox_id, std::vector<UniqueFd> udp, std::vector<UniqueFd> tcp);
  void RemoveSandbox(uint32_t sandbox_id);
  // Serves the sockets added so far and from then on (thread-safe). Until
  // then queries wait in the sockets: the daemon calls it once every
  // re-adopted sandbox is known, so none goes unanswered as unknown.
  void StartServing();

  uint64_t queries() const { return queries_; }
  uint64_t malformed() const { return malformed_; }
  uint64_t refused() const { return refused_; }
  uint64_t overloaded() const { return overloaded_; }  // queries or connections shed
  // Datagrams on a query's socket that were not its answer (spoofing attempts).
  uint64_t upstream_mismatched() const { return upstream_mismatched_; }
  uint64_t upstream_errors() const { return upstream_errors_; }  // queries that could not be sent
  // Relayed queries answered SERVFAIL: refused, unsendable or unanswered upstream.
  uint64_t servfail() const { return servfail_; }

 private:
  // A query names one question: anything longer than this is not a query we relay.
  static constexpr size_t kMaxQueryBytes = 4096;

  enum class Kind { kUdp, kTcpListener, kTcpClient };
  struct Socket {
    Socket(UniqueFd f, uint32_t id, Kind k) : fd(std::move(f)), sandbox_id(id), kind(k) {}
    UniqueFd fd;
    uint32_t sandbox_id = 0;
    Kind kind = Kind::kUdp;
    uint64_t client_id = 0;                         // kTcpClient
    protocol::DnsTcpFramer framer{kMaxQueryBytes};  // kTcpClient: cuts the stream into queries
    bool eof = false;  // kTcpClient: the client is done sending; answers still go out
    std::chrono::steady_clock::time_point idle_until{};
  };
  // Where the answer to a relayed query goes.
  struct Outstanding {
    uint32_t sandbox_id = 0;
    int udp_fd = -1;          // UDP: the listener it came in on, and the client
    uint64_t tcp_client = 0;  // TCP: the client connection (0 for UDP)
    sockaddr_storage client{};
    socklen_t client_len = 0;
    uint16_t client_id = 0;
    std::chrono::steady_clock::time_point expires;
    UpstreamQuery upstream;          // its own socket, id and question
    std::vector<uint8_t> query;      // the client's own query, to answer SERVFAIL in its terms
    protocol::DnsQuestion question;  // of `query`
  };
  struct Pending {
    uint32_t sandbox_id;
    std::vector<UniqueFd> udp, tcp;
  };

  void Run();
  void ApplyChanges();
  void OnUdp(Socket& s);
  void OnAccept(Socket& s, std::vector<Socket>* accepted);
  void OnTcpData(Socket& s);  // may mark the socket for closing (fd reset)
  // Cuts received bytes into queries and handles each; false when the
  // connection was closed (a framing error, a malformed query).
  bool OnTcpBytes(Socket& s, std::span<const uint8_t> data);
  // Sends one length-prefixed message; closes the connection (and returns
  // false) when it cannot take it all at once.
  bool WriteTcp(Socket& s, std::span<const uint8_t> msg);
  void Wake();
  bool HasOutstanding(uint64_t tcp_client) const;
  // Decides one query; sends NXDOMAIN or relays it. `reply` gets the answer
  // bytes when we answer ourselves. Returns false when the message is malformed.
  bool OnQuery(uint32_t sandbox_id, std::span<const uint8_t> msg, Outstanding where,
               std::vector<uint8_t>* reply);
  // Reads what arrived for one relayed query; true when it is answered
  // (the upstream's answer, or SERVFAIL when the upstream refused).
  bool OnResponse(Outstanding& o);
  // Sends `answer` to the client waiting for `o` (its datagram's sender, or
  // its TCP connection).
  void Deliver(Outstanding& o, std::span<const uint8_t> answer);
  // The SERVFAIL answer for a query the upstream failed, counted (globally
  // and for the sandbox) and logged (a warning when the upstream starts failing).
  std::vector<uint8_t> UpstreamFailed(uint32_t sandbox_id, std::span<const uint8_t> query,
                                      const protocol::DnsQuestion& question,
                                      protocol::DnsExtendedError code, const std::string& why);
  // Milliseconds until the next relayed query expires, at most `cap`.
  int PollTimeoutMs(int cap) const;

  sockaddr_storage upstream_;
  std::chrono::seconds query_timeout_;
  const sandbox::SandboxDirectory* sandboxes_;
  audit::EventLog* events_;
  UniqueFd wake_fd_;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  std::mutex changes_mu_;  // AddSandbox/RemoveSandbox -> forwarder thread
  std::vector<Pending> adds_;
  std::vector<uint32_t> removes_;
  bool serving_ = false;  // StartServing ran; adds and removes wait until then

  // Forwarder thread only.
  std::vector<Socket> sockets_;
  std::map<uint64_t, Outstanding> outstanding_;  // by serial number
  uint64_t next_serial_ = 1;
  uint64_t next_client_id_ = 1;
  std::atomic<uint64_t> queries_{0}, malformed_{0}, refused_{0}, overloaded_{0};
  std::atomic<uint64_t> upstream_mismatched_{0}, upstream_errors_{0}, servfail_{0};
  bool upstream_failing_ = false;  // the last relayed query failed: logged once, until one succeeds
};

}  // namespace egressd::dns
