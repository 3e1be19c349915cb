#include "policy/bpf_lowering.h"

#include <cstring>

namespace egressd::policy {

std::vector<std::pair<egressd_cidr_key, egressd_cidr_value>> LowerDenyCidrs(
    const Policy& policy, uint32_t policy_set_id) {
  std::vector<std::pair<egressd_cidr_key, egressd_cidr_value>> entries;
  entries.reserve(policy.deny_cidrs.size());
  for (size_t i = 0; i < policy.deny_cidrs.size(); ++i) {
    const Cidr& cidr = policy.deny_cidrs[i];
    egressd_cidr_key key{};
    key.prefixlen = 32 + static_cast<uint32_t>(cidr.mapped_prefix_len());
    key.policy_set_id = EGRESSD_CIDR_SET_KEY(policy_set_id, !cidr.network.is_v4());
    memcpy(key.addr, cidr.network.bytes.data(), sizeof(key.addr));
    egressd_cidr_value value{static_cast<uint32_t>(i)};
    entries.emplace_back(key, value);
  }
  return entries;
}

}  // namespace egressd::policy
