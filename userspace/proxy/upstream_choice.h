// Which address a connection decided by a host name goes to. The sandbox
// never picks it: it is one of the addresses egressd's resolver returned for
// the name (the original destination when it is among them). The choice is
// also refused when it falls in the policy's deny_cidrs or is one of
// egressd's own listeners (a loop).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "policy/compiled_policy.h"
#include "policy/ip_address.h"

namespace egressd::proxy {

struct UpstreamChoice {
  std::optional<policy::IpAddress> addr;
  std::string error;  // set when addr is empty
};

struct OwnListeners {
  uint16_t proxy_port = 0;
  uint16_t dns_port = 0;
};

UpstreamChoice ChooseUpstream(const std::vector<policy::IpAddress>& answers,
                              const policy::IpAddress& original, uint16_t port,
                              const policy::CompiledPolicy& policy, const OwnListeners& own);

// Refusal reason when `addr:port` may not be an upstream at all, else "".
std::string RefuseUpstreamAddress(const policy::IpAddress& addr, uint16_t port,
                                  const policy::CompiledPolicy& policy, const OwnListeners& own);

}  // namespace egressd::proxy
