// `egressctl policy suggest`: a policy that allows what a sandbox did under
// an audit-mode policy, and nothing more. Pure: the observations come in,
// YAML text goes out (the loader reads it back; a unit test makes sure).
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "policy/policy.h"

namespace egressd::policy {

struct ObservedTraffic {
  std::set<std::string> hosts;  // normalized host names and IP literals (SNI, Host, DNS)
  std::set<std::string> tcp;    // "1.2.3.4:22", "[::1]:5432": TCP decided by address
  std::set<std::string> other;  // what no policy allows (UDP, raw sockets, deny_cidrs hits)
  uint64_t dropped = 0;         // entries past the bound, not kept
  bool operator==(const ObservedTraffic&) const = default;
};

// The suggested policy, named "<base name>-learned" (cut to the name limit).
// It keeps the base policy's deny_cidrs and allow_get_body, lists the observed hosts in
// allowed_hosts (deny by default) and the observed addresses in allow_tcp.
// With no host observed it denies every host ("*" in denied_hosts).
std::string SuggestPolicy(const Policy& base, const ObservedTraffic& seen,
                          const std::string& instance);

}  // namespace egressd::policy
