// A fake connection that drives an HttpSession in memory: an upstream is
// "connected" at once, sends complete at once into strings, nothing happens
// behind the session's back. Used by the unit tests and fuzz_http_session;
// the real Connection is covered end to end (tests/e2e/test_http*.py).
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "policy/policy_loader.h"
#include "userspace/proxy/http_session.h"

namespace egressd::proxy {

inline std::shared_ptr<const sandbox::SandboxView> MakeView(const std::string& yaml) {
  auto loaded = policy::ParsePolicy(yaml);
  if (!loaded.policy) std::abort();
  auto view = std::make_shared<sandbox::SandboxView>();
  view->id = 7;
  view->instance = "unit";
  view->policy = std::make_shared<policy::CompiledPolicy>(loaded.policy.value_or(policy::Policy{}));
  view->counters = std::make_shared<sandbox::ProxyCounters>();
  view->observed = std::make_shared<sandbox::Observations>();
  return view;
}

inline constexpr const char* kPolicy =
    "name: unit\nallowed_hosts: [\"allowed.test\", \"other.test\"]\n";

class FakeConnection : public HttpSessionOwner {
 public:
  explicit FakeConnection(const std::string& yaml = kPolicy) : view_(MakeView(yaml)) {
    up_.Allocate(buffers_);
    down_.Allocate(buffers_);
  }

  // The client sends `bytes` (and maybe closes).
  void ClientSends(const std::string& bytes, bool eof = false) {
    Append(up_, bytes);
    up_.eof = eof;
    session_.OnClientBytes();
  }
  void UpstreamSends(const std::string& bytes, bool eof = false) {
    Append(down_, bytes);
    down_.eof = eof;
    session_.OnUpstreamBytes();
  }

  std::shared_ptr<const sandbox::SandboxView> View() const override { return view_; }
  FilterVerdict FilterRequest(RequestHead& head, bool* websocket) override {
    RequestContext ctx{*view_, nullptr, *policy::IpAddress::Parse("127.0.0.1"), 80, head};
    FilterVerdict verdict = RunRequestFilters(ctx);
    *websocket = ctx.websocket;
    return verdict;
  }
  void RouteRequest(const std::string& host) override {
    routed.push_back(host);
    if (host != upstream_host) {
      upstream_host = host;
      connects++;
    }
    session_.StartForwarding();
  }
  void CloseUpstream() override {
    upstream_host.clear();
    up_.DiscardUpTo(up_.ready);
  }
  bool UpstreamFromPool() const override { return from_pool; }
  void BindUpstreamToClient() override { bound_to_client = true; }
  // A new connection to the same upstream, at once.
  bool ReplaceUpstream() override {
    std::string host = upstream_host;
    CloseUpstream();
    upstream_host = host;
    down_.eof = false;
    from_pool = false;
    replaced++;
    session_.StartForwarding();
    return true;
  }
  void Close(const std::string& why) override { closed = why; }
  void CloseAfterFlush() override {
    close_after_flush = true;
    Flush();
  }
  void SendReplyThenClose(std::string bytes) override {
    reply = std::move(bytes);
    up_.ready = up_.start;
    CloseUpstream();
    close_after_flush = true;
    Flush();  // what was ready before goes first, as the connection's Pump does
  }
  void StartWebSocket(const protocol::HeaderFields&) override { websocket = true; }
  void ArmHeadDeadline() override { deadline_armed = true; }
  void ArmResponseDeadline() override { response_deadline_armed = true; }
  uint64_t RecordLimit(const std::string& why) override {
    limits.push_back(why);
    return limits.size();  // stands for the event's seq
  }
  void CancelHeadDeadline() override { deadline_armed = response_deadline_armed = false; }
  void Flush() override {
    for (auto [d, out] : {std::pair{&up_, &to_upstream}, std::pair{&down_, &to_client}}) {
      if (d == &up_ && upstream_host.empty()) continue;
      while (true) {
        auto bytes = d->NextToSend();
        if (bytes.empty()) break;
        out->append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        d->Sent(bytes.size());
      }
    }
  }

  const sandbox::ProxyCounters& counters() const { return *view_->counters; }

  std::string to_upstream, to_client, reply, closed, upstream_host;
  std::vector<std::string> routed;
  int connects = 0;
  bool from_pool = false;  // the upstream "came from the pool"
  int replaced = 0;        // ReplaceUpstream calls
  bool bound_to_client = false;
  bool close_after_flush = false, websocket = false, deadline_armed = false;
  bool response_deadline_armed = false;
  std::vector<std::string> limits;

 private:
  static void Append(Direction& d, const std::string& bytes) {
    if (d.end + bytes.size() > d.cap) std::abort();  // the caller keeps within the buffer
    memcpy(d.buf.get() + d.end, bytes.data(), bytes.size());
    d.end += bytes.size();
  }

  std::shared_ptr<const sandbox::SandboxView> view_;
  RelayBufferPool buffers_{64 * 1024, 0, 0};
  Direction up_, down_;

 public:
  HttpSession session_{*this, up_, down_};
};

}  // namespace egressd::proxy
