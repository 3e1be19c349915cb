#include "userspace/audit/denial.h"

#include <spdlog/spdlog.h>

namespace egressd::audit {

void RecordDenial(EventLog* events, uint32_t sandbox_id, AuditEvent event) {
  std::string dst = event.address.empty() ? "-" : event.address;
  if (event.port != 0) {
    dst = event.address.find(':') != std::string::npos ? "[" + dst + "]" : dst;
    dst += ":" + std::to_string(event.port);
  }
  spdlog::info("{}: sandbox={} instance={} layer={} host={} dst={} reason=\"{}\"{}",
               event.enforced ? "deny" : "audit", sandbox_id, event.instance, event.layer,
               event.host.empty() ? "-" : event.host, dst, event.reason,
               event.enforced ? "" : " (audit mode: not enforced)");
  if (events) events->Append(std::move(event));
}

bool DenyOrReport(const sandbox::SandboxView& view, EventLog* events, AuditEvent event) {
  event.instance = view.instance;
  event.cgroup = view.cgroup;
  event.enforced = !view.audit();
  bool enforced = event.enforced;
  RecordDenial(events, view.id, std::move(event));
  return enforced;
}

}  // namespace egressd::audit
