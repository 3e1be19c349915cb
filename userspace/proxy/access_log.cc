#include "userspace/proxy/access_log.h"

#include <spdlog/spdlog.h>

namespace egressd::proxy {
namespace {

std::string_view DecisionName(AccessDecision d) {
  switch (d) {
    case AccessDecision::kAllowed:
      return "allowed";
    case AccessDecision::kDenied:
      return "denied";
    case AccessDecision::kAudit:
      return "audit";
    case AccessDecision::kFailed:
      return "failed";
    case AccessDecision::kUndecided:
    default:
      return "undecided";
  }
}

std::string_view OrDash(std::string_view s) {
  return s.empty() ? "-" : s;
}

}  // namespace

bool AccessLogEnabled() {
  return spdlog::should_log(spdlog::level::debug);
}

std::chrono::milliseconds AccessTally::elapsed() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start_);
}

void LogConnection(uint64_t id, const AccessSubject& s, std::string_view mode,
                   AccessDecision decision, const AccessTally& tally, std::string_view why) {
  if (!AccessLogEnabled()) return;
  spdlog::debug(
      "access: connection {} instance={} mode={} host={} address={} decision={} bytes_up={} "
      "bytes_down={} duration_ms={} ({})",
      id, OrDash(s.instance), mode, OrDash(s.host), OrDash(s.address), DecisionName(decision),
      tally.bytes_up(), tally.bytes_down(), tally.elapsed().count(), why);
}

void LogRequest(const AccessSubject& s, std::string_view method, int status,
                const AccessTally& tally) {
  if (!AccessLogEnabled()) return;
  spdlog::debug(
      "access: request instance={} method={} host={} address={} decision={} status={} "
      "bytes_up={} bytes_down={} duration_ms={}",
      OrDash(s.instance), OrDash(method), OrDash(s.host), OrDash(s.address),
      DecisionName(tally.decision()), status, tally.bytes_up(), tally.bytes_down(),
      tally.elapsed().count());
}

}  // namespace egressd::proxy
