// The daemon's file-descriptor limit: every proxied connection holds two.
#pragma once

namespace egressd::daemon {

// Raises the soft RLIMIT_NOFILE to the hard limit and logs the result (info;
// a warning when it cannot be raised). Called once at start.
void RaiseFdLimit();

}  // namespace egressd::daemon
