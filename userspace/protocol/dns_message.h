// DNS wire format: queries for egressd's own resolver, response parsing, and
// the minimal checks the forwarder applies to a sandbox's query.
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

inline constexpr uint16_t kDnsTypeCname = 5;
inline constexpr uint16_t kDnsClassIn = 1;

// A standard recursive query (RD=1, class IN, no EDNS) for one name; nullopt if
// the name is not a valid DNS name (labels 1..63 of [A-Za-z0-9-_], at most 253
// characters, one trailing dot allowed).
std::optional<std::vector<uint8_t>> BuildDnsQuery(uint16_t id, std::string_view name, DnsType type);

struct DnsAnswer {
  std::array<uint8_t, 16> addr;  // v4 stored v4-mapped (::ffff:a.b.c.d)
  bool is_v4;
  uint32_t ttl;
};

struct DnsResponse {
  uint16_t id;
  uint8_t rcode;
  std::string question_name;  // lowercased, no trailing dot
  uint16_t question_type;
  std::vector<DnsAnswer> answers;
  uint32_t min_ttl;  // over the answers and the CNAMEs leading to them; 0 when none
};

// Parses a response: QR=1, QDCOUNT=1, TC=0; follows name compression (only
// backward pointers, bounded hops); collects class-IN A/AAAA answers whose owner
// is the question name or reached from it through CNAME chains in the same
// response. nullopt with *error set on failure (error may be null).
std::optional<DnsResponse> ParseDnsResponse(std::span<const uint8_t> data, std::string* error);

struct DnsQuestion {
  uint16_t id;
  std::string name;  // lowercased, no trailing dot; DNS characters only
  uint16_t type;
  size_t question_end;  // offset just past the question section
};

// Minimal checks on a query from a sandbox: header present, QR=0, opcode
// QUERY, QDCOUNT=1, question parses (name of DNS characters only).
std::optional<DnsQuestion> ParseDnsQuery(std::span<const uint8_t> data, std::string* error);

// The NXDOMAIN answer to `query` (which ParseDnsQuery accepted as `question`):
// same id and question, RD as asked, no records.
std::vector<uint8_t> BuildDnsNxdomain(std::span<const uint8_t> query, const DnsQuestion& question);

// The EDNS OPT record (RFC 6891) of a query whose additional section holds
// exactly that record and nothing else follows it (no answer or authority
// records, version 0); nullopt otherwise.
struct DnsQueryEdns {
  uint16_t udp_payload;  // the CLASS field: the largest UDP answer the client takes
  bool dnssec_ok;        // the DO bit, which an answer echoes (RFC 3225)
};
std::optional<DnsQueryEdns> FindDnsQueryEdns(std::span<const uint8_t> query,
                                             const DnsQuestion& question);

// Extended DNS Error info codes (RFC 8914) egressd answers with.
enum class DnsExtendedError : uint16_t {
  kBlocked = 15,               // the name is denied by the sandbox's policy
  kNoReachableAuthority = 22,  // the upstream resolver did not answer in time
  kNetworkError = 23,          // the upstream resolver refused, or the query could not be sent
};

// The SERVFAIL answer to `query` (which ParseDnsQuery accepted as
// `question`): same id and question, RD as asked, no records except, when
// FindDnsQueryEdns finds the client's OPT record, an OPT record of ours
// (DO echoed) with one Extended DNS Error option: `code` and `text` (at most
// 200 bytes of it are kept).
std::vector<uint8_t> BuildDnsServfail(std::span<const uint8_t> query, const DnsQuestion& question,
                                      DnsExtendedError code, std::string_view text);

// The answer to a query for a name the policy denies: NXDOMAIN as
// BuildDnsNxdomain, plus, when the client sent an OPT record, an OPT record of
// ours with the Extended DNS Error "Blocked" (15) and `text` (at most 200
// bytes), which dig and resolvers show.
std::vector<uint8_t> BuildDnsBlocked(std::span<const uint8_t> query, const DnsQuestion& question,
                                     std::string_view text);

}  // namespace egressd::protocol
