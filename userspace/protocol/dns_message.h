// DNS messages: queries egressd's resolver sends, responses it reads, and the
// minimal checks the forwarder makes on queries from sandboxes. Every length
// and pointer in a message is checked; compression loops are refused.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::protocol {

enum class DnsType : uint16_t { kA = 1, kAAAA = 28 };

// A recursive query (RD=1) for one name; nullopt if the name is not valid.
std::optional<std::vector<uint8_t>> BuildDnsQuery(uint16_t id, std::string_view name, DnsType type);

struct DnsAnswer {
  std::array<uint8_t, 16> addr{};  // IPv4 as v4-mapped
  bool is_v4 = false;
  uint32_t ttl = 0;
};

struct DnsResponse {
  uint16_t id = 0;
  uint8_t rcode = 0;
  std::string question_name;  // lowercased, no trailing dot
  uint16_t question_type = 0;
  std::vector<DnsAnswer> answers;  // A/AAAA for the question name or its CNAME chain
  uint32_t min_ttl = 0;
};

std::optional<DnsResponse> ParseDnsResponse(std::span<const uint8_t> data, std::string* error);

struct DnsQuestion {
  uint16_t id = 0;
  std::string name;  // lowercased
  uint16_t type = 0;
};

std::optional<DnsQuestion> ParseDnsQuery(std::span<const uint8_t> data, std::string* error);

}  // namespace egressd::protocol
