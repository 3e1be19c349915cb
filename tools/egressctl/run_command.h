// `egressctl run`: starts a command in a transient cgroup under a policy.
//
// The child is created inside the cgroup (clone3 with CLONE_INTO_CGROUP), so
// no socket of it predates its membership, and it waits on a pipe until the
// daemon has attached the policy: the command's first instruction already
// runs enforced. The child is PID 1 of a PID namespace of its own (with its
// own /proc): it forks the command, passes signals on to it and reaps
// orphans, so nothing outside the sandbox can be seen or signalled from it.
// egressctl then waits, forwards the signals sent to it, and
// asks the daemon to detach, which kills whatever the command left running
// and removes the cgroup. The daemon also does that on its own when
// egressctl dies first.
#pragma once

#include <string>
#include <vector>

namespace egressctl {

struct RunOptions {
  std::string socket;
  std::string policy;  // name, or a file (absolute path sent to the daemon)
  bool policy_is_file = false;
  std::string instance;       // default: run-<8 hex digits>
  std::string user;           // drop to this user and its groups; "" keeps the caller's
  std::string netns = "new";  // "new" or "host"
  std::vector<std::string> command;
};

// Exit status: the command's, 128+N when it died of signal N, 125 when
// egressctl could not set the sandbox up, 126/127 when the command could not
// be executed / was not found.
int RunCommand(const RunOptions& options);

}  // namespace egressctl
