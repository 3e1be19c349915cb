#include "userspace/proxy/upstream_choice.h"

#include <algorithm>

namespace egressd::proxy {
namespace {

bool IsLoopback(const policy::IpAddress& a) {
  if (a.is_v4()) return a.bytes[12] == 127;
  static const policy::IpAddress kV6Loopback = *policy::IpAddress::Parse("::1");
  return a == kV6Loopback;
}

bool IsUnspecified(const policy::IpAddress& a) {
  if (a.is_v4())
    return a.bytes[12] == 0 && a.bytes[13] == 0 && a.bytes[14] == 0 && a.bytes[15] == 0;
  for (uint8_t b : a.bytes)
    if (b != 0) return false;
  return true;
}

}  // namespace

std::string RefuseUpstreamAddress(const policy::IpAddress& addr, uint16_t port,
                                  const policy::CompiledPolicy& policy, const OwnListeners& own,
                                  bool apply_deny_cidrs) {
  if (apply_deny_cidrs)
    for (const auto& cidr : policy.policy().deny_cidrs)
      if (cidr.Contains(addr))
        return "address " + addr.ToString() + " is in deny_cidrs " + cidr.ToString();
  if (IsUnspecified(addr)) return "address " + addr.ToString() + " is unspecified";
  if (IsLoopback(addr) && own.refuse_loopback)
    return "address " + addr.ToString() +
           " is the host's loopback, not the sandbox's (it has a network namespace of its own)";
  if (own.refuse_loopback && own.host_addresses && own.host_addresses->Contains(addr))
    return "address " + addr.ToString() +
           " is the host's own (the sandbox has a network namespace of its own)";
  if (IsLoopback(addr) &&
      (port == own.proxy_port || (own.sandboxes && own.sandboxes->IsListenerPort(port))))
    return "address " + addr.ToString() + " is egressd itself";
  if (own.metrics_port != 0 && port == own.metrics_port &&
      (IsLoopback(addr) || (own.host_addresses && own.host_addresses->Contains(addr))))
    return "address " + addr.ToString() + " is egressd itself (its metrics)";
  return "";
}

std::string FormatAddressPort(const policy::IpAddress& addr, uint16_t port) {
  if (addr.is_v4()) return addr.ToString() + ":" + std::to_string(port);
  return "[" + addr.ToString() + "]:" + std::to_string(port);
}

UpstreamChoice ChooseUpstream(const std::vector<policy::IpAddress>& answers,
                              const policy::IpAddress& original, uint16_t port,
                              const policy::CompiledPolicy& policy, const OwnListeners& own,
                              bool apply_deny_cidrs) {
  if (answers.empty()) return {std::nullopt, "the name has no addresses"};
  std::vector<policy::IpAddress> candidates;
  if (std::find(answers.begin(), answers.end(), original) != answers.end())
    candidates.push_back(original);
  // Prefer the family the sandbox used: its origin may listen on one only.
  for (const auto& a : answers)
    if (a.is_v4() == original.is_v4() && a != original) candidates.push_back(a);
  for (const auto& a : answers)
    if (a.is_v4() != original.is_v4()) candidates.push_back(a);
  std::string first_refusal;
  for (const auto& c : candidates) {
    std::string refusal = RefuseUpstreamAddress(c, port, policy, own, apply_deny_cidrs);
    if (refusal.empty()) return {c, ""};
    if (first_refusal.empty()) first_refusal = refusal;
  }
  return {std::nullopt, first_refusal};
}

}  // namespace egressd::proxy
