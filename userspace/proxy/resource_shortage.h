// Out of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM). The
// kernel sends every sandbox connection to the proxy, so nothing leaves
// unproxied when the proxy cannot take it: a connection that cannot be
// accepted is closed at once (while the worker's spare fd lasts) or waits in
// the listen backlog, and a request whose upstream socket cannot be made
// gets 502. Each case is counted (status: proxy.accept_errors,
// refused_no_fd, upstream_socket_errors); a warning is logged at most every
// few seconds for the whole proxy. Accepting resumes by itself when
// descriptors come back.
#pragma once

#include <cstddef>
#include <string>

#include "userspace/common/unique_fd.h"
#include "userspace/kernel/bpf_programs.h"
#include "userspace/proxy/proxy_context.h"

namespace egressd::proxy {

// EMFILE, ENFILE, ENOBUFS or ENOMEM.
bool IsResourceShortage(int err);

// Logs `what` as a warning unless one was logged in the last few seconds.
void WarnResourceShortage(ProxyGlobalCounters& counters, const std::string& what);

// A descriptor held in reserve (/dev/null): freed, it lets a worker accept
// and close connections while the process is out of descriptors. Invalid
// when none could be opened.
UniqueFd OpenSpareFd();

// Out of descriptors: frees `spare`, accepts and closes the connections
// waiting on `listener_fd` (at most `max`, deleting their original
// destination records), then takes the spare back. Only the worker that owns
// the listener may call this, and only while no accept of it is armed (so a
// ready listener is never emptied under it). Returns how many it closed.
size_t RefuseWaitingConnections(int listener_fd, UniqueFd& spare, const kernel::BpfPrograms& bpf,
                                size_t max);

}  // namespace egressd::proxy
