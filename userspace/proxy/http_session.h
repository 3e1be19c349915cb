// One HTTP/1 session over a byte stream from the sandbox (plain, or TLS
// decrypted by the connection) and the stream of the upstream it is routed to.
// It runs the request/response loop, one transaction at a time:
//
//   read a request head -> request filters -> route (owner: resolve, connect)
//   -> forward the head (as received, or serialized again when a filter
//   changed it) and the body -> response -> next request, or close
//
// The session touches no socket: it parses and releases bytes of the two
// Directions it is given (what may be sent, what is held) and asks its owner
// (the connection) for everything else. Keep-alive and pipelined requests
// are each decided; nothing of a refused request ever goes upstream.
#pragma once

#include <memory>
#include <string>

#include "userspace/protocol/http_request_stream.h"
#include "userspace/protocol/http_response_stream.h"
#include "userspace/protocol/http_upgrade.h"
#include "userspace/proxy/access_log.h"
#include "userspace/proxy/byte_direction.h"
#include "userspace/proxy/local_reply.h"
#include "userspace/proxy/request_filters.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::proxy {

// What the session needs from the connection that drives it. Called once per
// request or event, never per I/O operation.
class HttpSessionOwner {
 public:
  virtual ~HttpSessionOwner() = default;
  // The policy view for the request now being decided (read again per request).
  virtual std::shared_ptr<const sandbox::SandboxView> View() const = 0;
  // Runs the request filters on a head.
  virtual FilterVerdict FilterRequest(RequestHead& head, bool* websocket) = 0;
  // The request passed: use an upstream for `host` (the open one when it still
  // fits, else a new one). The owner calls StartForwarding() once connected,
  // or Reply() when that fails.
  virtual void RouteRequest(const std::string& host) = 0;
  virtual void CloseUpstream() = 0;
  // Ends the connection now (nothing more is delivered).
  virtual void Close(const std::string& why) = 0;
  // Sends what is ready to the client, then ends the connection.
  virtual void CloseAfterFlush() = 0;
  // A reply of egressd's own goes to the client; nothing more is forwarded
  // either way; then the connection ends.
  virtual void SendReplyThenClose(std::string bytes) = 0;
  // The upstream accepted a WebSocket upgrade: the connection becomes a
  // tunnel whose frames are checked.
  virtual void StartWebSocket(const protocol::HeaderFields& response_headers) = 0;
  // A request head has begun: it must complete in time.
  virtual void ArmHeadDeadline() = 0;
  // The request is complete: its response must begin in time.
  virtual void ArmResponseDeadline() = 0;
  // Cancels the head or response deadline.
  virtual void CancelHeadDeadline() = 0;
  // A limit tripped (head too large, a timeout): logged and recorded.
  // Returns the event's seq (0: none kept).
  virtual uint64_t RecordLimit(const std::string& why) = 0;
  // Starts the sends and receives the buffers now allow.
  virtual void Flush() = 0;
  // "ip:port" for the access log: the request's upstream, or (`upstream`
  // false: nothing went upstream) the connection's original destination.
  virtual std::string AddressForLog(bool /*upstream*/) const { return ""; }
  // The current upstream came from the pool: another client connection used
  // it last, so it may have timed out just as this request went (upstream_pool.h).
  virtual bool UpstreamFromPool() const { return false; }
  // The current upstream carries a connection-bound authentication (NTLM,
  // Negotiate: a 401/407 answered on it, or a request that authenticates
  // that way): it serves no other client connection, ever (upstream_pool.h).
  virtual void BindUpstreamToClient() {}
  // Closes the current upstream (what was meant for it is discarded) and
  // connects a new one, never a pooled one, to the same host and address;
  // StartForwarding() follows. False when the owner cannot.
  virtual bool ReplaceUpstream() { return false; }
};

class HttpSession {
 public:
  // `to_upstream` holds what the client sent, `to_client` what the upstream sent.
  HttpSession(HttpSessionOwner& owner, Direction& to_upstream, Direction& to_client);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // New bytes (or the end) from the client.
  void OnClientBytes();
  // Bytes were sent upstream: parsing may go on (a body waits for room).
  void OnUpstreamSent() { ProcessClient(); }
  // New bytes (or the end) from the upstream.
  void OnUpstreamBytes();
  // The upstream the owner chose for the current request is connected.
  void StartForwarding();
  // Answers the client with a reply of egressd's own (local_reply.h: its
  // reason code, event, and a body in the form the client prefers) and ends
  // the connection. One answer per connection: a later call does nothing.
  void Reply(LocalReply reply);
  // An idle connection between requests: the parsers' memory goes (they are
  // made afresh for the next request and response).
  void ReleaseIdleMemory();
  // The connection is closing: a request still open gets its access log line.
  void OnConnectionClosed() { EndRequest(0); }
  // The last request's host and decision ("", kUndecided before the first):
  // what the access log says of an HTTP connection.
  const std::string& last_host() const { return last_host_; }
  AccessDecision last_decision() const { return last_decision_; }

  bool reading_head() const { return step_ == Step::kReadingHead; }
  // The request went out whole and no byte of its response came yet.
  bool awaiting_response() const {
    return step_ == Step::kForwarding && request_done_ && !response_started_;
  }
  // The session answered or is ending: what the client sends is ignored.
  bool finished() const { return finished_; }
  // A pooled upstream failed (closed, reset) before any byte of its
  // response: a request that is safe to send twice (GET, HEAD or OPTIONS
  // without a body, complete) goes again, once, on a new connection, as a
  // client would retry on its own reused connection (RFC 9110 9.2.2). True
  // when it is on its way; false: the caller ends the connection as before.
  bool ResendOnNewUpstream();

  // The last exchange with the current upstream ended cleanly (a complete
  // response that keeps the connection, no authentication challenge) and no
  // other has begun: the connection may serve another client (upstream_pool.h).
  bool upstream_reusable() const { return upstream_reusable_; }

 private:
  enum class Step {
    kReadingHead,  // parsing the next request head
    kRouting,      // head allowed; waiting for the owner's upstream (StartForwarding)
    kForwarding,   // head sent; request body and response flowing
  };

  void ProcessClient();
  void OnHead();
  // The access log's line for the current request (once), if one began.
  void EndRequest(int status);
  void FinishTransaction();
  void DeliverResponseThenClose();
  // Adds "Connection: close" to a final response head just parsed when the
  // client's connection ends after it; `released`: how far the direction
  // was released before this head's last bytes.
  void SayClose(size_t released);
  // At the start of forwarding: keeps the head in resend_head_ when the
  // request may go again (ResendOnNewUpstream).
  void KeepHeadToResend();
  void ForgetHeadToResend();

  HttpSessionOwner& owner_;
  Direction& up_;
  Direction& down_;
  Step step_ = Step::kReadingHead;
  protocol::HttpRequestStream request_;
  std::unique_ptr<protocol::HttpResponseStream> response_;
  bool request_done_ = false;
  bool response_done_ = false;
  bool request_keep_alive_ = true;
  bool response_keep_alive_ = true;
  bool upgrade_ = false;  // the request asks for WebSocket
  bool finished_ = false;
  bool response_started_ = false;  // a byte of the current response arrived
  bool upstream_reusable_ = false;
  bool request_has_body_ = false;
  bool request_binds_upstream_ = false;  // Authorization: NTLM or Negotiate
  // The current request's head as it went upstream, kept while it may be
  // sent again (ResendOnNewUpstream); empty otherwise.
  std::string resend_head_;
  bool resending_ = false;  // StartForwarding() comes for a request sent again
  std::string method_;
  metrics::Stopwatch request_clock_;  // since the current request's head was allowed (metrics)
  // The current request, for the access log: begun with its first byte.
  AccessTally request_tally_;
  bool request_open_ = false;
  std::string request_host_;  // its Host (access log, egressd's own replies)
  std::string last_host_;
  AccessDecision last_decision_ = AccessDecision::kUndecided;
  bool prefers_json_ = false;  // its Accept prefers application/json
};

}  // namespace egressd::proxy
