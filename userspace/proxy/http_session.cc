#include "userspace/proxy/http_session.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "userspace/protocol/http_accept.h"
#include "userspace/protocol/http_fields.h"
#include "userspace/proxy/request_edits.h"

namespace egressd::proxy {
namespace {

// Authorization or Proxy-Authorization with a scheme that authenticates the
// connection rather than the request (NTLM, Negotiate: RFC 4559).
bool AuthenticatesTheConnection(const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (!protocol::EqualsIgnoreCase(name, "authorization") &&
        !protocol::EqualsIgnoreCase(name, "proxy-authorization"))
      continue;
    std::string_view scheme(value);
    scheme = scheme.substr(0, scheme.find(' '));
    if (protocol::EqualsIgnoreCase(scheme, "ntlm") ||
        protocol::EqualsIgnoreCase(scheme, "negotiate"))
      return true;
  }
  return false;
}

}  // namespace

HttpSession::HttpSession(HttpSessionOwner& owner, Direction& to_upstream, Direction& to_client)
    : owner_(owner), up_(to_upstream), down_(to_client) {}

HttpSession::~HttpSession() = default;

void HttpSession::OnClientBytes() {
  if (finished_) {
    owner_.Flush();  // answered already: what the client sends now is ignored
    return;
  }
  if (up_.eof && up_.scanned == up_.end) {
    if (step_ == Step::kReadingHead) {
      owner_.Close("client done");
      return;
    }
    if (step_ == Step::kForwarding && !request_done_) {
      owner_.Close("client closed in the middle of a request");
      return;
    }
  }
  ProcessClient();
}

void HttpSession::ProcessClient() {
  // After a refusal nothing more from this client is parsed or forwarded;
  // while a request is being routed, nothing after its head is parsed.
  if (finished_ || step_ == Step::kRouting) return;
  while (true) {
    if (step_ == Step::kReadingHead) {
      if (up_.scanned == up_.end) break;
      // A head split over several reads must complete in time (the first
      // runs under the connection's classification deadline); an idle
      // connection between requests is the idle timer's.
      owner_.ArmHeadDeadline();
      if (!request_open_) {
        request_open_ = true;
        request_tally_.Restart();
        request_host_.clear();
        method_.clear();
      }
      auto step = request_.Feed({up_.buf.get() + up_.scanned, up_.end - up_.scanned});
      up_.scanned += step.consumed;
      request_tally_.BytesUp(step.consumed);
      if (step.event == protocol::HttpRequestStream::Event::kError) {
        if (int status = request_.limit_status()) {
          owner_.View()->counters->heads_too_large++;
          std::string why = "request head refused: " + request_.error();
          uint64_t seq = owner_.RecordLimit(why);
          Reply({status, ReplyReason::kHeadTooLarge, why, "", seq});
          return;
        }
        owner_.View()->counters->bad_requests++;
        Reply({400, ReplyReason::kBadRequest, "malformed request: " + request_.error(), "", 0});
        return;
      }
      if (step.event == protocol::HttpRequestStream::Event::kHeadComplete) {
        up_.head_end = up_.scanned;
        OnHead();
        return;  // goes on when the upstream is ready (StartForwarding)
      }
      break;  // kNeedMore (the parser bounds a head to 16 KiB)
    }
    // kForwarding: the body of the current request, until it completes.
    if (request_done_) break;
    auto step = request_.Feed({up_.buf.get() + up_.scanned, up_.end - up_.scanned});
    up_.scanned += step.consumed;
    request_tally_.BytesUp(step.consumed);
    up_.ready = up_.scanned;
    if (step.event == protocol::HttpRequestStream::Event::kError) {
      owner_.View()->counters->bad_requests++;
      owner_.Close("malformed request body: " + request_.error());
      return;
    }
    if (step.event == protocol::HttpRequestStream::Event::kMessageComplete) {
      request_done_ = true;
      if (!response_started_ && !response_done_) owner_.ArmResponseDeadline();
      if (upgrade_) break;  // bytes after an upgrade request wait for the 101
      if (response_done_) {
        FinishTransaction();
        return;
      }
      continue;
    }
    break;  // kNeedMore
  }
  owner_.Flush();
}

void HttpSession::OnHead() {
  owner_.CancelHeadDeadline();
  const protocol::HttpRequestHead& parsed = request_.head();
  method_ = parsed.method;
  request_keep_alive_ = parsed.keep_alive;
  request_has_body_ = parsed.has_body;
  request_binds_upstream_ = AuthenticatesTheConnection(parsed.headers);
  upgrade_ = false;
  request_done_ = response_done_ = false;
  RequestHead head(parsed);
  request_host_ = head.host();
  std::string accept;  // several Accept fields make one list
  for (const auto& [name, value] : parsed.headers)
    if (protocol::EqualsIgnoreCase(name, "accept")) accept += (accept.empty() ? "" : ", ") + value;
  prefers_json_ = protocol::AcceptPrefersJson(accept);
  bool websocket = false;
  FilterVerdict verdict = owner_.FilterRequest(head, &websocket);
  if (verdict.reply) {
    request_tally_.Denied();
    Reply(std::move(verdict.local));
    return;
  }
  owner_.View()->counters->requests_allowed++;
  // egressd ends the client's connection itself; the upstream's may serve
  // the next request (upstream_pool.h).
  if (HasDroppableConnectionClose(head.fields())) DropConnectionClose(head.Edit());
  request_clock_.Start();
  upgrade_ = websocket;
  step_ = Step::kRouting;
  // The head being decided is [up_.ready, up_.head_end). A changed one goes
  // out serialized again, in its place.
  if (head.changed()) {
    up_.splice = std::make_unique<HeadSplice>(
        HeadSplice{.at = up_.ready, .skip_to = up_.head_end, .bytes = head.Serialize(), .sent = 0});
  }
  owner_.RouteRequest(head.host());
}

void HttpSession::StartForwarding() {
  request_tally_.Allowed();
  const bool resending = std::exchange(resending_, false);  // ResendOnNewUpstream
  step_ = Step::kForwarding;
  if (request_binds_upstream_) owner_.BindUpstreamToClient();
  upstream_reusable_ = false;
  if (!resending) KeepHeadToResend();
  up_.ready = up_.head_end;
  response_ = std::make_unique<protocol::HttpResponseStream>();
  response_->ExpectResponseTo(method_);
  response_keep_alive_ = true;
  response_started_ = false;
  if (resending) {
    owner_.ArmResponseDeadline();  // the request is complete: its response is due
    owner_.Flush();
    return;
  }
  // A request without a body completes on an empty feed.
  ProcessClient();
}

// Only on an upstream from the pool, and only what may be sent twice: the
// head is all of such a request.
void HttpSession::KeepHeadToResend() {
  ForgetHeadToResend();
  if (request_has_body_ || upgrade_ || !owner_.UpstreamFromPool() ||
      !(method_ == "GET" || method_ == "HEAD" || method_ == "OPTIONS"))
    return;
  // The head being sent is [up_.ready, up_.head_end), or a splice's bytes.
  if (up_.splice && up_.splice->at == up_.ready) {
    resend_head_ = up_.splice->bytes;
  } else {
    resend_head_.assign(reinterpret_cast<const char*>(up_.buf.get()) + up_.ready,
                        up_.head_end - up_.ready);
  }
}

bool HttpSession::ResendOnNewUpstream() {
  if (resend_head_.empty() || finished_ || step_ != Step::kForwarding || !request_done_ ||
      response_started_ || up_.send_pending || down_.scanned != down_.end)
    return false;
  // The head goes again as a splice where the bytes after it begin (what
  // the failed upstream was sent is discarded up to there by the owner).
  const size_t at = up_.ready;
  up_.splice = std::make_unique<HeadSplice>(
      HeadSplice{.at = at, .skip_to = at, .bytes = std::move(resend_head_), .sent = 0});
  ForgetHeadToResend();
  up_.head_end = at;
  resending_ = true;
  if (!owner_.ReplaceUpstream()) {
    resending_ = false;
    up_.splice.reset();
    return false;
  }
  return true;
}

void HttpSession::OnUpstreamBytes() {
  if (!response_ || response_done_) {
    // Between requests the upstream may only close (idle keep-alive timeout).
    if (down_.scanned < down_.end) {
      owner_.Close("upstream sent bytes nobody asked for");
      return;
    }
    if (down_.eof) {
      if (step_ == Step::kForwarding && !request_done_) {
        // The upstream answered and left mid-request: the rest of this
        // request may not go anywhere else, so the connection ends here.
        owner_.Close("upstream closed before the request was complete");
        return;
      }
      owner_.CloseUpstream();
    }
    owner_.Flush();
    return;
  }
  if (!response_started_ && down_.scanned < down_.end) {
    response_started_ = true;
    ForgetHeadToResend();         // answered: it never goes again
    owner_.CancelHeadDeadline();  // the response deadline: it began in time
  }
  // A head just completed may complete its (empty) message on an empty feed.
  bool after_head = false;
  while (down_.scanned < down_.end || after_head) {
    after_head = false;
    if (response_done_) {
      owner_.Close("upstream sent bytes nobody asked for");
      return;
    }
    const size_t released = down_.ready;  // may be on its way to the client already
    auto step = response_->Feed({down_.buf.get() + down_.scanned, down_.end - down_.scanned});
    down_.scanned += step.consumed;
    request_tally_.BytesDown(step.consumed);
    down_.ready = down_.scanned;
    if (step.event == protocol::HttpResponseStream::Event::kError) {
      owner_.View()->counters->upstream_errors++;
      owner_.Close("malformed response from upstream: " + response_->error());
      return;
    }
    if (step.event == protocol::HttpResponseStream::Event::kHeadComplete) {
      response_keep_alive_ = response_->keep_alive();
      SayClose(released);
      after_head = true;
      continue;
    }
    if (step.event == protocol::HttpResponseStream::Event::kMessageComplete) {
      int status = response_->status();
      if (status == 101) {
        if (!upgrade_ || !request_done_) {
          owner_.Close("upstream switched protocols without a complete WebSocket upgrade request");
          return;
        }
        finished_ = true;  // from here on a tunnel, not HTTP
        EndRequest(status);
        owner_.StartWebSocket(response_->headers());
        return;
      }
      if (status >= 100 && status < 200) continue;  // interim; the final response follows
      response_done_ = true;
      response_keep_alive_ = response_keep_alive_ && response_->keep_alive();
      if (!request_done_) {
        DeliverResponseThenClose();
        return;
      }
      // An upgrade the upstream declined leaves the stream's state unclear: end it.
      if (upgrade_) request_keep_alive_ = false;
      FinishTransaction();
      return;
    }
    break;  // kNeedMore
  }
  if (down_.eof && !response_done_) {
    if (!response_started_ && ResendOnNewUpstream()) return;
    auto step = response_->Finish();
    if (step.event == protocol::HttpResponseStream::Event::kMessageComplete) {
      response_done_ = true;
      response_keep_alive_ = false;
      if (request_done_) {
        FinishTransaction();
      } else {
        DeliverResponseThenClose();
      }
      return;
    }
    owner_.Close("upstream closed in the middle of a response");
    return;
  }
  owner_.Flush();
}

// The client's connection ends after this response (the request asked for
// it, and its Connection: close was kept from the upstream): the final
// response says so, as RFC 9112 section 9.6 asks, with a field added at the
// end of its head (the head itself goes out as received).
void HttpSession::SayClose(size_t released) {
  if (request_keep_alive_ || !response_->keep_alive() || response_->status() < 200) return;
  const size_t head_end = down_.scanned;
  if (head_end < released + 2 || head_end < 2 || down_.buf.get()[head_end - 2] != '\r' ||
      down_.buf.get()[head_end - 1] != '\n' || down_.splice)
    return;  // part of the head's last line went already: leave it as it is
  down_.splice = std::make_unique<HeadSplice>(HeadSplice{
      .at = head_end - 2, .skip_to = head_end - 2, .bytes = "Connection: close\r\n", .sent = 0});
}

void HttpSession::ForgetHeadToResend() {
  // Its memory goes too: the head may hold a credential a handler added.
  std::string().swap(resend_head_);
}

void HttpSession::ReleaseIdleMemory() {
  ForgetHeadToResend();
  // The response parser went with the last response (FinishTransaction).
  if (step_ == Step::kReadingHead) request_.ReleaseAtRest();
}

void HttpSession::FinishTransaction() {
  owner_.View()->counters->request_duration.Observe(request_clock_.Elapsed());
  EndRequest(response_ ? response_->status() : 0);
  if (down_.scanned < down_.end) {
    // Bytes after the response could pose as the next host's answer: the
    // response reaches the client, those bytes go nowhere, and both
    // connections end (nothing more of this client is read or forwarded).
    spdlog::debug("proxy: upstream sent {} bytes after its response", down_.end - down_.scanned);
    owner_.View()->counters->upstream_errors++;
    down_.end = down_.scanned;
    DeliverResponseThenClose();
    return;
  }
  // A 401/407 may be a connection-bound authentication (NTLM, Negotiate):
  // that upstream connection serves no other client, whatever comes next.
  int status = response_ ? response_->status() : 0;
  if (status == 401 || status == 407) owner_.BindUpstreamToClient();
  upstream_reusable_ = response_keep_alive_ && !down_.eof;
  if (!response_keep_alive_ || down_.eof) owner_.CloseUpstream();
  response_.reset();
  if (!request_keep_alive_ || up_.eof) {
    finished_ = true;
    owner_.CloseAfterFlush();
    return;
  }
  step_ = Step::kReadingHead;
  request_done_ = response_done_ = false;
  prefers_json_ = false;
  // The next request may already be buffered (pipelining); an idle
  // keep-alive connection is the idle timer's.
  ProcessClient();
}

// The upstream sent its whole final response before the request body was
// complete. It may read the rest as a new request, one this proxy never
// decided: no more of it goes anywhere. The client gets the response, then
// the end of the connection.
//
// Also used when the upstream sent bytes after its response. The response read
// so far goes to the client; then the client's connection ends. The upstream
// is closed at once: nothing more is read from it.
void HttpSession::DeliverResponseThenClose() {
  EndRequest(response_ ? response_->status() : 0);
  owner_.CloseUpstream();
  request_keep_alive_ = false;
  finished_ = true;
  owner_.CloseAfterFlush();
}

void HttpSession::Reply(LocalReply reply) {
  if (finished_) return;  // one answer per connection, then close
  if (reply.status == 403 || reply.status == 421) {
    request_tally_.Refused();  // a refusal that holds in every mode (an address, a credential)
  } else {
    request_tally_.Failed();
  }
  EndRequest(reply.status);
  finished_ = true;
  step_ = Step::kReadingHead;
  request_done_ = true;
  auto view = owner_.View();
  const auto& deny_response = view->policy->policy().deny_response;
  owner_.SendReplyThenClose(
      FormatLocalReply(reply, {.host = request_host_,
                               .policy = view->policy->name(),
                               .prefers_json = prefers_json_,
                               .deny_response = deny_response ? &*deny_response : nullptr}));
}

void HttpSession::EndRequest(int status) {
  if (!request_open_) return;
  request_open_ = false;
  last_host_ = request_host_;
  last_decision_ = request_tally_.decision();
  if (!AccessLogEnabled()) return;
  bool upstream = request_tally_.decision() == AccessDecision::kAllowed ||
                  request_tally_.decision() == AccessDecision::kAudit;
  LogRequest({.instance = owner_.View()->instance,
              .host = request_host_,
              .address = owner_.AddressForLog(upstream)},
             method_, status, request_tally_);
}

}  // namespace egressd::proxy
