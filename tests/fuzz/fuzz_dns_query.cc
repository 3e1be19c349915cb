#include <cstdlib>
#include <span>
#include <string>

#include "userspace/protocol/dns_message.h"

using egressd::protocol::DnsType;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  auto q = egressd::protocol::ParseDnsQuery({data, size}, &error);
  if (!q) {
    if (error.empty()) std::abort();
    return 0;
  }
  // Whatever the forwarder accepts is a name egressd could itself query, and
  // it survives a round trip unchanged.
  auto built = egressd::protocol::BuildDnsQuery(q->id, q->name, DnsType::kA);
  if (!built) std::abort();
  auto again = egressd::protocol::ParseDnsQuery(*built, &error);
  if (!again || again->name != q->name || again->id != q->id || again->type != 1) std::abort();
  // The SERVFAIL the forwarder answers it with (a failing upstream) is a
  // response egressd itself would parse, to the same question; it carries an
  // OPT record exactly when the query's was found, and ends with it.
  std::span<const uint8_t> query(data, size);
  const auto edns = egressd::protocol::FindDnsQueryEdns(query, *q);
  const std::string text(data[size - 1] % 64, 'x');
  auto servfail = egressd::protocol::BuildDnsServfail(
      query, *q, egressd::protocol::DnsExtendedError::kNoReachableAuthority, text);
  auto parsed = egressd::protocol::ParseDnsResponse(servfail, &error);
  if (!parsed || parsed->rcode != 2 || parsed->id != q->id || parsed->question_name != q->name ||
      parsed->question_type != q->type || !parsed->answers.empty())
    std::abort();
  const size_t opt_size = edns ? 11 + 6 + text.size() : 0;
  if (servfail.size() != q->question_end + opt_size || servfail[11] != (edns ? 1 : 0)) std::abort();
  // The answer to a denied name: the same, as NXDOMAIN with EDE 15.
  auto blocked = egressd::protocol::BuildDnsBlocked(query, *q, text);
  parsed = egressd::protocol::ParseDnsResponse(blocked, &error);
  if (!parsed || parsed->rcode != 3 || parsed->id != q->id || parsed->question_name != q->name ||
      !parsed->answers.empty() || blocked.size() != servfail.size())
    std::abort();
  if (edns && blocked[q->question_end + 11 + 5] != 15) std::abort();
  return 0;
}
