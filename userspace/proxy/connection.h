// One sandbox connection through the proxy, from accept() to close.
//
//   accept -> original destination + sandbox (BPF map) -> allow_tcp? tunnel
//          -> classify the first bytes (at most 16 KiB, with a deadline):
//               TLS ClientHello: SNI decides -> tunnel to a resolved address
//               HTTP/1.x: each request's Host decides -> forwarded or 403
//               anything else: closed
//
// Per-direction state (Direction) follows liburing's proxy example: bytes are
// received into a buffer and sent from the same buffer; a direction has at
// most one recv and one send in flight. Bytes [start, ready) may go out now,
// [ready, end) wait for a decision (a request head being judged).
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
#include "userspace/dns/resolver.h"
#include "userspace/protocol/http_request_stream.h"
#include "userspace/protocol/http_response_stream.h"
#include "userspace/protocol/websocket_frames.h"
#include "userspace/proxy/upstream_choice.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::proxy {

class Worker;
enum class OpKind : uint8_t;

struct Direction {
  std::unique_ptr<uint8_t[]> buf;
  size_t cap = 0;
  size_t start = 0;    // first byte not yet sent
  size_t ready = 0;    // [start, ready) may be sent now
  size_t scanned = 0;  // [.., scanned) has been through the parser (HTTP)
  size_t end = 0;      // received so far
  bool recv_pending = false;
  bool send_pending = false;
  bool eof = false;           // the source closed its side
  bool shut_written = false;  // we sent FIN to the destination
  // The recv in flight was armed before its bytes moved this far towards the
  // start of buf (a request head rewritten shorter): its data lands that far
  // past `end` and is moved back when it completes.
  size_t recv_shift = 0;
  void Allocate(size_t bytes) {
    if (!buf) {
      buf = std::make_unique_for_overwrite<uint8_t[]>(bytes);  // pages stay untouched until used
      cap = bytes;
    }
  }
  void Reset() { start = ready = scanned = end = 0; }
};

class alignas(16) Connection {
 public:
  Connection(Worker& worker, uint64_t id, int client_fd);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return id_; }
  void Start();
  void OnCompletion(OpKind kind, int res, uint32_t flags);
  void OnResolved(const dns::ResolveResult& result);

 private:
  enum class Phase {
    kClassifying,  // waiting for the first bytes
    kResolving,    // a name decided; waiting for its addresses
    kConnecting,   // upstream connect in flight
    kTunnel,       // bytes pass through untouched both ways
    kHttp,         // HTTP/1.x request by request
    kDraining,     // our answer is out; reading what the client still sends
    kClosing,
  };
  enum class Mode { kNone, kTunnel, kHttp };
  // HTTP transaction state (kHttp phase).
  enum class HttpStep {
    kReadingHead,  // parsing the next request head
    kForwarding,   // head sent; request body and response flowing
  };

  // Setup.
  bool LookupOrigin();
  void CheckNextTcpHost();
  void OnResolvedNow(const dns::ResolveResult& result);
  // Classification.
  void Classify();
  void DecideTls(const std::optional<std::string>& sni);
  void PassToOriginal(const char* why);
  // Resolution and connect.
  void ResolveAndConnect(const std::string& host);
  void LookupHost(const std::string& host);
  void ConnectTo(const policy::IpAddress& addr);
  void OnConnected(int res);
  // HTTP.
  void HttpProcessClient();
  void HttpOnHead();
  void HttpStartForwarding();
  void HttpProcessUpstream();
  void HttpFinishTransaction();
  void HttpDeliverResponseThenClose();
  void HttpReply(int status, const std::string& reason);
  bool ReplaceRequestHead(const std::string& head);
  // A 101 to a WebSocket upgrade: from here on a tunnel whose frames are checked.
  void StartWebSocket();
  // A tunnel's new bytes of one direction may go (after the WebSocket frame
  // check, if any). False when that check closed the connection.
  bool ReleaseTunnelBytes(bool client);
  void CloseUpstream();
  // Data movement.
  void Pump();
  void ArmRecv(bool client);
  void ArmSend(bool to_upstream);
  void ArmSendReply();
  void OnRecv(bool client, int res);
  void OnSend(bool to_upstream, int res);
  void Deny(const std::string& why);
  // Ends the connection for a reason the audit trail keeps: logged, recorded
  // as an event (the caller counts it).
  void CloseWithEvent(const std::string& why);
  // A deny decided by address or by the shape of the first bytes: in audit
  // mode it is reported and the connection passes through to its original
  // destination instead.
  void DenyOrPass(const std::string& why);
  // Audit mode: reports a deny that is not enforced and returns true (the
  // caller goes on as if allowed); false when the policy is enforced.
  bool AuditOnly(const std::string& host, const std::string& why);
  // Logs an enforced deny and records the event (audit mode: AuditOnly logs).
  void RecordDeny(const std::string& host, const std::string& reason, bool enforced = true);
  OwnListeners Own() const;
  void Close(const std::string& why);
  void MaybeFinish();
  bool RetireDone();
  void ArmDeadline(std::chrono::milliseconds after);
  void CancelDeadline();
  // One idle timer per connection; any byte either way pushes it back.
  void ArmIdleTimer(std::chrono::nanoseconds after);
  void OnIdleTimer(int res);
  std::shared_ptr<const sandbox::SandboxView> CurrentView() const;

  Worker& worker_;
  uint64_t id_;
  int client_fd_;
  int upstream_fd_ = -1;
  int retiring_fd_ = -1;  // a closed upstream whose operations are still in flight
  int upstream_ops_ = 0;  // operations in flight on the upstream socket
  // A send to a retired upstream is in flight: once done, skip to here.
  size_t up_discard_to_ = 0;
  bool up_discard_pending_ = false;
  std::optional<policy::IpAddress> connect_waiting_;  // connect after retiring_fd_ is gone
  int pending_ = 0;  // operations in flight; the object lives until it is 0
  Phase phase_ = Phase::kClassifying;
  Mode mode_ = Mode::kNone;
  bool deadline_armed_ = false;
  int deadlines_in_flight_ = 0;  // timeout ops not yet completed
  int stale_deadlines_ = 0;      // of those, older than the armed one
  bool close_after_flush_ = false;
  bool idle_armed_ = false;
  std::chrono::steady_clock::time_point last_byte_{};  // last byte received or sent, either side
  __kernel_timespec idle_after_{};

  egressd_orig_dst origin_{};
  policy::IpAddress origin_addr_;
  uint16_t origin_port_ = 0;                             // host byte order
  std::shared_ptr<const sandbox::SandboxView> sandbox_;  // for counters and logs

  Direction up_;    // client -> upstream
  Direction down_;  // upstream -> client
  sockaddr_storage upstream_sa_{};
  __kernel_timespec connect_timeout_{};
  __kernel_timespec deadline_{};

  // allow_tcp entries given by name, checked at accept.
  std::vector<std::string> tcp_hosts_;
  size_t tcp_host_index_ = 0;
  bool resolving_for_tcp_ = false;
  bool resolve_pending_ = false;

  // The name that decided the current upstream ("" for the original address).
  std::string decided_host_;
  std::optional<policy::IpAddress> upstream_addr_;

  // HTTP.
  HttpStep http_step_ = HttpStep::kReadingHead;
  std::unique_ptr<protocol::HttpRequestStream> request_;
  std::unique_ptr<protocol::HttpResponseStream> response_;
  bool request_done_ = false;
  bool response_done_ = false;
  bool request_keep_alive_ = true;
  bool response_keep_alive_ = true;
  bool upgrade_ = false;  // the request asks for WebSocket
  // An upgraded WebSocket: each direction's frames are checked as they pass.
  std::optional<protocol::WebSocketFrameValidator> ws_from_client_;
  std::optional<protocol::WebSocketFrameValidator> ws_from_server_;
  size_t head_end_ = 0;  // end of the request head being decided, in up_
  std::string method_;
  std::string reply_;  // an answer of egressd's own (403, 400, 502), then close
  bool sending_reply_ = false;
};

}  // namespace egressd::proxy
