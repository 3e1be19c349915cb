// Where an accepted connection was going, and for which sandbox: the record
// the BPF programs made at its connect(), keyed by the peer address and the
// network namespace of the accepted socket. Taking it deletes it.
#pragma once

#include <optional>

#include "bpf/egressd_shared.h"
#include "userspace/kernel/bpf_programs.h"

namespace egressd::proxy {

// nullopt when the socket was not redirected by our programs or the record
// is gone (the caller fails closed).
std::optional<egressd_orig_dst> TakeOriginalDestination(int accepted_fd,
                                                        const kernel::BpfPrograms& bpf);

}  // namespace egressd::proxy
