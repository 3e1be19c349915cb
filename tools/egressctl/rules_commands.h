// `egressctl handler ...` and `egressctl hosts ...`: an instance's runtime
// handler bindings and host lists.
#pragma once

#include <string>
#include <vector>

namespace egressctl {

struct RulesArgs {
  std::string socket;
  std::vector<std::string> positional;  // "handler"/"hosts" first
  std::string host;                     // --host GLOB
  std::string params;                   // --params JSON
  bool json = false;
};

int HandlerCommand(const RulesArgs& args);
int HostsCommand(const RulesArgs& args);

}  // namespace egressctl
