// Lowering a policy's kernel-enforced rules into BPF map entries. Pure: the
// daemon writes what this returns.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "bpf/egressd_shared.h"
#include "policy/policy.h"

namespace egressd::policy {

// One LPM trie entry per deny_cidrs rule, under `policy_set_id`. IPv4 rules
// become v4-mapped prefixes (96 + n bits); prefixlen also counts the 32 bits
// of the set id that precede the address in the key.
std::vector<std::pair<egressd_cidr_key, egressd_cidr_value>> LowerDenyCidrs(const Policy& policy,
                                                                            uint32_t policy_set_id);

}  // namespace egressd::policy
