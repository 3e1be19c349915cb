#include "userspace/audit/denial.h"

#include <spdlog/spdlog.h>

namespace egressd::audit {

uint64_t RecordDenial(EventLog* events, uint32_t sandbox_id, AuditEvent event) {
  std::string dst = event.address.empty() ? "-" : event.address;
  if (event.port != 0) {
    dst = event.address.find(':') != std::string::npos ? "[" + dst + "]" : dst;
    dst += ":" + std::to_string(event.port);
  }
  std::string line =
      fmt::format("{}: sandbox={} instance={} layer={} host={} dst={} reason=\"{}\"{}",
                  event.enforced ? "deny" : "audit", sandbox_id, event.instance, event.layer,
                  event.host.empty() ? "-" : event.host, dst, event.reason,
                  event.enforced ? "" : " (audit mode: not enforced)");
  const uint64_t seq = events ? events->Append(std::move(event)) : 0;
  // The log line follows the event's per-instance rate limit: a sandbox that
  // floods denies cannot flood the daemon's log from the proxy workers (what
  // was left out is counted, and noted in the audit log).
  if (!events || seq != 0) spdlog::info("{} event={}", line, seq);
  return seq;
}

bool DenyOrReport(const sandbox::SandboxView& view, EventLog* events, AuditEvent event,
                  uint64_t* seq) {
  event.instance = view.instance;
  event.cgroup = view.cgroup;
  event.enforced = !view.audit();
  bool enforced = event.enforced;
  uint64_t recorded = RecordDenial(events, view.id, std::move(event));
  if (seq) *seq = recorded;
  return enforced;
}

}  // namespace egressd::audit
