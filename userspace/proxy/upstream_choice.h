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
#include "userspace/proxy/host_addresses.h"
#include "userspace/sandbox/sandbox_view.h"

namespace egressd::proxy {

struct UpstreamChoice {
  std::optional<policy::IpAddress> addr;
  std::string error;  // set when addr is empty
};

// egressd's own loopback listeners: the shared proxy port, and the
// per-sandbox DNS (and proxy) ports the sandbox directory knows.
struct OwnListeners {
  uint16_t proxy_port = 0;
  const sandbox::SandboxDirectory* sandboxes = nullptr;
  // A sandbox in a namespace of its own: egressd must not reach the host's
  // loopback on its behalf (its own loopback never reaches the proxy), nor
  // any other address of the host (`host_addresses`, when given).
  bool refuse_loopback = false;
  const AddressSet* host_addresses = nullptr;
  // --metrics-listen's port (0: off): never an upstream on loopback, an
  // unspecified address or an address of the host (`host_addresses`).
  uint16_t metrics_port = 0;
};

// apply_deny_cidrs false (audit mode): deny_cidrs do not refuse; egressd's
// own listeners, unspecified addresses (0.0.0.0, ::: this host) and, for
// sandboxes in a namespace of their own, loopback always do.
UpstreamChoice ChooseUpstream(const std::vector<policy::IpAddress>& answers,
                              const policy::IpAddress& original, uint16_t port,
                              const policy::CompiledPolicy& policy, const OwnListeners& own,
                              bool apply_deny_cidrs = true);

// Refusal reason when `addr:port` may not be an upstream at all, else "".
std::string RefuseUpstreamAddress(const policy::IpAddress& addr, uint16_t port,
                                  const policy::CompiledPolicy& policy, const OwnListeners& own,
                                  bool apply_deny_cidrs = true);

// "1.2.3.4:80", "[::1]:80": the allow_tcp form of a destination.
std::string FormatAddressPort(const policy::IpAddress& addr, uint16_t port);

}  // namespace egressd::proxy
