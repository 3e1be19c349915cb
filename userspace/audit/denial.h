// Every deny, from every layer (kernel, proxy, dns), is recorded by one
// function: one log line and one audit event, the same shape everywhere.
//
//   observe -> decide (policy) -> DenyOrReport: enforced? -> event + log
//
// In audit mode a deny of the proxy or DNS is reported and not enforced: the
// caller goes on as if the policy allowed it.
#pragma once

#include <cstdint>
#include <string>

#include "userspace/audit/event_log.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::audit {

// Logs `event` (a "deny:" line, or an "audit:" line when not enforced) and
// appends it to `events` (may be null). `sandbox_id` is for the log only.
// Returns the event's seq (0: not kept, or no log), which replies name.
uint64_t RecordDenial(EventLog* events, uint32_t sandbox_id, AuditEvent event);

// A deny of a sandbox's proxy or DNS traffic, decided by `view`'s policy.
// Fills in the sandbox's instance and cgroup, records it, and returns true
// when it is enforced; false in audit mode (the caller lets it through).
// `seq` (may be null) gets the event's seq (0 when it was not kept).
bool DenyOrReport(const sandbox::SandboxView& view, EventLog* events, AuditEvent event,
                  uint64_t* seq = nullptr);

}  // namespace egressd::audit
