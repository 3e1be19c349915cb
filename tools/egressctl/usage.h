// egressctl's usage texts: the whole list (`egressctl --help`) and each
// command's own (`egressctl COMMAND --help`).
#pragma once

#include <string_view>

namespace egressctl {

// Every command, with the notes that apply to all of them.
const char* FullUsage();

// "usage: egressctl COMMAND ..." and what it does; nullptr for an unknown command.
const char* CommandUsage(std::string_view command);

}  // namespace egressctl
