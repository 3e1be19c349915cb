// One sandbox connection through the proxy, from accept() to close: the
// io_uring operations, the sockets, the deadlines, and the decisions made
// before any HTTP (original destination, allow_tcp, TLS SNI).
//
//   accept -> original destination + sandbox (BPF map) -> allow_tcp? tunnel
//          -> classify the first bytes (at most 16 KiB, with a deadline):
//               TLS ClientHello: SNI decides -> tunnel to a resolved address
//               HTTP/1.x: an HttpSession decides each request (Host,
//                         request filters) -> forwarded or refused
//               anything else: closed
//
// Bytes move in two Directions (byte_direction.h); a tunnel never parses
// them (WebSocket frames excepted), HTTP goes through the session.
#pragma once

#include <liburing.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpf/egressd_shared.h"
#include "policy/ip_address.h"
#include "userspace/common/unique_fd.h"
#include "userspace/dns/resolver.h"
#include "userspace/protocol/websocket_frames.h"
#include "userspace/proxy/access_log.h"
#include "userspace/proxy/byte_direction.h"
#include "userspace/proxy/connection_slot.h"
#include "userspace/proxy/http_session.h"
#include "userspace/proxy/op_kind.h"
#include "userspace/proxy/tls_side.h"
#include "userspace/proxy/upstream_choice.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::proxy {

class Worker;

// A connection with no byte either way for this long, between requests or
// in a tunnel, gives its relay buffers back until its next byte.
inline constexpr std::chrono::seconds kParkAfter{1};

class alignas(kOpAlignment) Connection final : public HttpSessionOwner {
 public:
  Connection(Worker& worker, uint64_t id, int client_fd);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return id_; }
  void Start();
  void OnCompletion(OpKind kind, int res, uint32_t flags);
  void OnResolved(const dns::ResolveResult& result);
  // The sandbox's rules changed: a tunnel whose host is denied now is closed.
  void RecheckTunnel();

 private:
  enum class Phase {
    kClassifying,  // waiting for the first bytes
    kResolving,    // a name decided; waiting for its addresses
    kConnecting,   // upstream connect in flight
    kUpstreamTls,  // intercepted: egressd's TLS handshake with the upstream
    kTunnel,       // bytes pass through untouched both ways
    kHttp,         // HTTP/1.x request by request (session_)
    kDraining,     // our answer is out; reading what the client still sends
    kClosing,
  };
  enum class Mode { kNone, kTunnel, kHttp };

  // Setup.
  bool LookupOrigin();
  void CheckNextTcpHost();
  void OnResolvedNow(const dns::ResolveResult& result);
  // Classification.
  void Classify();
  void DecideTls(const std::optional<std::string>& sni);
  // tls.intercept: egressd completes the sandbox's handshake with a leaf of
  // its CA for `sni`, and the decrypted requests go through the HTTP session.
  void StartInterception(const std::string& sni);
  void RefuseClientHello();
  // Connected to the upstream of an intercepted connection: TLS to it, verified.
  void StartUpstreamTls();
  // A TLS side failed (handshake, certificate, protocol): answered and closed.
  void OnTlsFailure(bool client);
  void PassToOriginal(const char* why);
  // Resolution and connect.
  void ResolveAndConnect(const std::string& host);
  void LookupHost(const std::string& host);
  void ConnectTo(const policy::IpAddress& addr);
  void OnConnected(int res);
  // Connected (or a pooled connection taken): TLS to it if intercepted, else forward.
  void OnUpstreamReady();
  // A refusal of the upstream's address or connect: 403/502 to an HTTP
  // client, the end of the connection otherwise.
  void RefuseUpstream(int http_status, ReplyReason reason, const std::string& why);

  // HttpSessionOwner: what the HTTP session asks of the connection.
  std::shared_ptr<const sandbox::SandboxView> View() const override { return CurrentView(); }
  FilterVerdict FilterRequest(RequestHead& head, bool* websocket) override;
  void RouteRequest(const std::string& host) override;
  void CloseUpstream() override;
  void Close(const std::string& why) override;
  void CloseAfterFlush() override;
  void SendReplyThenClose(std::string bytes) override;
  void StartWebSocket(const protocol::HeaderFields& response_headers) override;
  void ArmHeadDeadline() override;
  void ArmResponseDeadline() override;
  void CancelHeadDeadline() override { CancelDeadline(); }
  uint64_t RecordLimit(const std::string& why) override {
    return RecordEnforced(decided_host_, why);
  }
  void Flush() override { Pump(); }
  std::string AddressForLog(bool upstream) const override;
  bool UpstreamFromPool() const override { return upstream_from_pool_; }
  void BindUpstreamToClient() override { upstream_bound_to_client_ = true; }
  bool ReplaceUpstream() override;

  // A tunnel's new bytes of one direction may go (after the WebSocket frame
  // check, if any). False when that check closed the connection.
  bool ReleaseTunnelBytes(bool client);
  // Data movement.
  void Pump();
  void ArmRecv(bool client);
  void ArmSend(bool to_upstream);
  void ArmSendReply();
  void OnRecv(bool client, int res);
  // New plaintext (or the end) from one side: decrypted first when that side
  // is TLS, then handed to the tunnel or the HTTP session.
  void Deliver(bool client);
  TlsSide* Tls(bool client) { return client ? client_tls_.get() : upstream_tls_.get(); }
  // An operation in flight reads or writes the buffer of `d` (not a TLS side's own).
  bool BufferInUse(const Direction& d) const;
  // Before SHUT_WR on a TLS side: close_notify queued and sent.
  bool ReadyToShutWrite(bool client);
  void OnSend(bool to_upstream, int res);

  // Denies, all recorded through audit/denial.h. Enforce: a deny the policy
  // decided, true when enforced (false in audit mode: go on as allowed).
  bool Enforce(const std::string& host, const std::string& why, const std::string& handler = "");
  // A deny that holds in every mode (an address egressd never connects to,
  // a broken frame, a timeout): recorded as enforced.
  uint64_t RecordEnforced(const std::string& host, const std::string& why);
  // Ends the connection for a reason the audit trail keeps (counted by the caller).
  void CloseWithEvent(const std::string& why);
  // Refuses the connection: counted, recorded, closed.
  void DenyConnection(const std::string& why);
  // A deny decided by address or by the shape of the first bytes: in audit
  // mode it is reported and the connection passes through to its original
  // destination instead. `tls_alert`: the bytes were a ClientHello, which
  // gets the alert access_denied before the close.
  void DenyOrPass(const std::string& why, bool tls_alert = false);

  OwnListeners Own() const;
  void MaybeFinish();
  // An operation on a retired upstream completed (`res`: its result).
  bool RetireDone(int res);

  // Upstream connections kept for other clients (connection_pooling.cc,
  // upstream_pool.h).
  // The last exchange on the upstream ended cleanly, nothing is in flight
  // on it but its idle receive, and it holds no unread byte.
  bool UpstreamReusable() const;
  std::string PoolKey(const policy::IpAddress& addr) const;
  // Moves the upstream to the worker's pool once its idle receive is
  // cancelled (at once when none is in flight).
  void RetireToPool(std::string key);
  void PutRetiredInPool();
  // A pooled connection for `addr` is now this connection's upstream (then
  // OnUpstreamReady ran); false when the pool has none.
  bool TakePooledUpstream(const policy::IpAddress& addr);
  void ArmDeadline(std::chrono::milliseconds after);
  void CancelDeadline();
  void OnDeadline();
  // One idle timer per connection; any byte either way pushes it back.
  void ArmIdleTimer(std::chrono::nanoseconds after);
  void OnIdleTimer(int res);

  // Idle connections give their relay buffers back (connection_parking.cc).
  // A buffer for `d` from the worker's pool; false (counted, warned) when
  // none can be had.
  bool TakeBuffer(Direction& d);
  // Out of sockets or memory for the upstream: 502 to an HTTP client, the
  // end of the connection otherwise.
  void FailForResources(const std::string& why);
  // Nothing in flight but receives, every byte relayed, between requests
  // (HTTP) or in a tunnel, every TLS side quiet: the buffers may go back.
  bool CanPark() const;
  // Quiet for kParkAfter: cancels the pending receives to give their buffers back.
  void MaybePark();
  // A receive cancelled by MaybePark completed: the buffer goes back and a
  // poll waits for the source to become readable (or the receive is
  // armed again, if the connection got busy meanwhile).
  void Park(bool client);
  // A parked direction's source is readable (or closed): a buffer again.
  void OnReadable(bool client, int res);
  bool Parked() const {
    return up_.parking == Parking::kParked || down_.parking == Parking::kParked;
  }
  // A side still receiving that could park (neither parked nor cancelling).
  bool SideAwake() const {
    return (up_.recv_pending && up_.parking == Parking::kNo) ||
           (down_.recv_pending && down_.parking == Parking::kNo);
  }
  // Keeps the proxy's parked-connections gauge in step with this connection.
  void CountParked();
  std::shared_ptr<const sandbox::SandboxView> CurrentView() const;

  Worker& worker_;
  uint64_t id_;
  UniqueFd client_fd_;
  UniqueFd upstream_fd_;
  UniqueFd retiring_fd_;           // a closed upstream whose operations are still in flight
  std::string retiring_pool_key_;  // not empty: retiring_fd_ goes to the pool, not closed
  int upstream_ops_ = 0;           // operations in flight on the upstream socket
  // A send to a retired upstream is in flight: once done, skip to here.
  size_t up_discard_to_ = 0;
  bool up_discard_pending_ = false;
  std::optional<policy::IpAddress> connect_waiting_;  // connect after retiring_fd_ is gone
  bool upstream_from_pool_ = false;        // the current upstream was taken from the pool
  bool skip_pool_ = false;                 // the next connect makes a new connection
  bool upstream_bound_to_client_ = false;  // BindUpstreamToClient: never pooled
  int pending_ = 0;                        // operations in flight; the object lives until it is 0
  Phase phase_ = Phase::kClassifying;
  Mode mode_ = Mode::kNone;
  bool deadline_armed_ = false;
  int deadlines_in_flight_ = 0;  // timeout ops not yet completed
  int stale_deadlines_ = 0;      // of those, older than the armed one
  bool close_after_flush_ = false;
  bool idle_armed_ = false;
  bool parked_counted_ = false;                        // counted in proxy.parked_connections
  std::chrono::steady_clock::time_point last_byte_{};  // last byte received or sent, either side
  // The current upstream's last byte either way (or when it became ready):
  // how long it has been idle, for the pool.
  std::chrono::steady_clock::time_point upstream_active_{};
  __kernel_timespec idle_after_{};

  egressd_orig_dst origin_{};
  policy::IpAddress origin_addr_;
  uint16_t origin_port_ = 0;                             // host byte order
  std::shared_ptr<const sandbox::SandboxView> sandbox_;  // for counters and logs
  std::optional<ConnectionSlot> slot_;  // one of the sandbox's --max-connections-per-sandbox

  Direction up_;                // client -> upstream
  Direction down_;              // upstream -> client
  sockaddr_in6 upstream_sa_{};  // the connect's address (large enough for IPv4 too)
  __kernel_timespec connect_timeout_{};
  __kernel_timespec deadline_{};

  // allow_tcp entries given by name, checked at accept.
  std::vector<std::string> tcp_hosts_;
  size_t tcp_host_index_ = 0;
  bool resolving_for_tcp_ = false;
  bool resolve_pending_ = false;

  // The name that decided the current upstream ("" for the original address).
  std::string decided_host_;
  bool tunnel_reported_ = false;  // audit mode: RecheckTunnel reported this tunnel
  std::optional<policy::IpAddress> upstream_addr_;
  metrics::Stopwatch connect_clock_;  // since the upstream connect was submitted (metrics)

  // kHttp. Held in the connection, not apart: an idle connection's memory
  // is then one block (what its requests allocated can be given back whole).
  std::optional<HttpSession> session_;
  // Interception: the sandbox-facing TLS side, the upstream-facing one, and
  // one of a closed upstream whose send is still in flight (its buffer).
  std::unique_ptr<TlsSide> client_tls_;
  std::unique_ptr<TlsSide> upstream_tls_;
  std::unique_ptr<TlsSide> retiring_tls_;
  std::string intercepted_sni_;  // "" when not intercepted
  bool client_handshake_acked_ = false;
  // An upgraded WebSocket: each direction's frames are checked as they pass.
  // (Held apart: most connections never carry WebSocket, and idle ones should be small.)
  std::unique_ptr<protocol::WebSocketFrameValidator> ws_from_client_;
  std::unique_ptr<protocol::WebSocketFrameValidator> ws_from_server_;
  std::string reply_;  // an answer of egressd's own (403, 400, 502), then close
  bool sending_reply_ = false;

  // The access log's line for this connection (access_log.h), written at Close.
  AccessTally tally_;
  std::string last_host_;  // the last host an upstream was connected for
};

}  // namespace egressd::proxy
