// `egressctl secret set|rm|list`: the handlers' secrets, kept by the daemon
// in its --secrets-dir. A value is read from stdin only (never argv, where
// `ps` and shell history would show it) and never printed.
#pragma once

#include <string>
#include <vector>

namespace egressctl {

struct SecretArgs {
  std::string socket;
  std::string instance;           // --instance ID ("" = shared by every instance)
  bool json = false;              // --json (list)
  std::vector<std::string> args;  // after "secret": set NAME | rm NAME | list
};

// Exit status: 0, 1 when egressd refuses or cannot be reached, 2 for a usage error.
int SecretCommand(const SecretArgs& args);

}  // namespace egressctl
