#include "userspace/protocol/dns_message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace egressd::protocol {
namespace {

using Bytes = std::vector<uint8_t>;

void Put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void Put32(Bytes& b, uint32_t v) {
  Put16(b, static_cast<uint16_t>(v >> 16));
  Put16(b, static_cast<uint16_t>(v));
}
void PutName(Bytes& b, const std::string& name) {
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    b.push_back(static_cast<uint8_t>(dot - start));
    b.insert(b.end(), name.begin() + start, name.begin() + dot);
    start = dot + 1;
  }
  b.push_back(0);
}
void PutPointer(Bytes& b, uint16_t offset) {
  Put16(b, 0xc000 | offset);
}

Bytes Header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns = 0,
             uint16_t ar = 0) {
  Bytes b;
  Put16(b, id);
  Put16(b, flags);
  Put16(b, qd);
  Put16(b, an);
  Put16(b, ns);
  Put16(b, ar);
  return b;
}

// Record header after the owner name.
void PutRr(Bytes& b, uint16_t type, uint32_t ttl, const Bytes& rdata, uint16_t klass = 1) {
  Put16(b, type);
  Put16(b, klass);
  Put32(b, ttl);
  Put16(b, static_cast<uint16_t>(rdata.size()));
  b.insert(b.end(), rdata.begin(), rdata.end());
}

// www.example.com A -> CNAME cdn.example.net (compressed) -> A 192.0.2.1, 192.0.2.2;
// plus an unrelated A record that must be ignored.
Bytes CnameResponse() {
  Bytes b = Header(0xbeef, 0x8180, 1, 5);
  PutName(b, "www.Example.com");  // question at offset 12
  Put16(b, 1);
  Put16(b, 1);
  PutPointer(b, 12);
  size_t cname_rdata_at = b.size() + 10;
  Bytes cname;
  PutName(cname, "cdn.example.net");
  PutRr(b, 5, 300, cname);
  // A records owned by the CNAME target, compressed to its RDATA.
  PutPointer(b, static_cast<uint16_t>(cname_rdata_at));
  PutRr(b, 1, 60, {192, 0, 2, 1});
  PutPointer(b, static_cast<uint16_t>(cname_rdata_at));
  PutRr(b, 1, 120, {192, 0, 2, 2});
  PutName(b, "evil.example");
  PutRr(b, 1, 5, {203, 0, 113, 9});
  PutPointer(b, static_cast<uint16_t>(cname_rdata_at));
  PutRr(b, 16, 5, {4, 't', 'e', 'x', 't'});  // TXT: skipped
  return b;
}

TEST(DnsMessage, BuildQueryBytes) {
  auto q = BuildDnsQuery(0x1234, "Example.COM", DnsType::kA);
  ASSERT_TRUE(q);
  Bytes want = {0x12, 0x34, 0x01, 0x00, 0,   1, 0,   0,   0,   0, 0, 0, 7, 'e', 'x',
                'a',  'm',  'p',  'l',  'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1};
  EXPECT_EQ(*q, want);
  auto aaaa = BuildDnsQuery(1, "a.b.", DnsType::kAAAA);
  ASSERT_TRUE(aaaa);
  EXPECT_EQ(Bytes(aaaa->end() - 4, aaaa->end()), (Bytes{0, 28, 0, 1}));
}

TEST(DnsMessage, BuildQueryRejectsInvalidNames) {
  for (std::string bad : {std::string(""), std::string("."), std::string("a..b"), std::string(".a"),
                          std::string("a b"), std::string("a\\.b"), std::string("caf\xc3\xa9.com"),
                          std::string("*.a.com"), std::string(64, 'a') + ".com",
                          std::string(254, 'a'), std::string("a\0b", 3)}) {
    EXPECT_FALSE(BuildDnsQuery(1, bad, DnsType::kA)) << bad;
  }
  std::string max = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                    "." + std::string(61, 'd');
  ASSERT_EQ(max.size(), 253u);
  EXPECT_TRUE(BuildDnsQuery(1, max, DnsType::kA));
}

TEST(DnsMessage, QueryRoundTrip) {
  auto q = BuildDnsQuery(777, "_sip._tcp.Example.org", DnsType::kAAAA);
  ASSERT_TRUE(q);
  std::string err;
  auto parsed = ParseDnsQuery(*q, &err);
  ASSERT_TRUE(parsed) << err;
  EXPECT_EQ(parsed->id, 777);
  EXPECT_EQ(parsed->name, "_sip._tcp.example.org");
  EXPECT_EQ(parsed->type, 28);
}

TEST(DnsMessage, NxdomainAnswersTheQuestionAsked) {
  Bytes q = *BuildDnsQuery(4242, "Exfil.Example.org", DnsType::kA);
  q[11] = 1;  // an EDNS OPT record: not echoed
  q.insert(q.end(), {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0});
  std::string err;
  auto question = ParseDnsQuery(q, &err);
  ASSERT_TRUE(question) << err;
  Bytes nx = BuildDnsNxdomain(q, *question);
  auto parsed = ParseDnsResponse(nx, &err);
  ASSERT_TRUE(parsed) << err;
  EXPECT_EQ(parsed->id, 4242);
  EXPECT_EQ(parsed->rcode, 3);
  EXPECT_EQ(parsed->question_name, "exfil.example.org");
  EXPECT_EQ(parsed->question_type, 1);
  EXPECT_TRUE(parsed->answers.empty());
  EXPECT_EQ(nx[2] & 0x01, 0x01) << "RD echoed";
  EXPECT_EQ(nx[11], 0) << "no additional records";
  EXPECT_EQ(nx.size(), question->question_end);
}

// A query with one EDNS OPT record (payload 1232, DO as given, `options` as RDATA).
Bytes WithOpt(Bytes q, bool dnssec_ok, const Bytes& options = {}) {
  q[11] = 1;
  q.insert(q.end(), {0, 0, 41, 0x04, 0xd0, 0, 0, static_cast<uint8_t>(dnssec_ok ? 0x80 : 0), 0});
  Put16(q, static_cast<uint16_t>(options.size()));
  q.insert(q.end(), options.begin(), options.end());
  return q;
}

TEST(DnsMessage, ServfailWithoutEdnsIsHeaderAndQuestion) {
  Bytes q = *BuildDnsQuery(77, "slow.example", DnsType::kAAAA);
  std::string err;
  auto question = ParseDnsQuery(q, &err);
  ASSERT_TRUE(question) << err;
  Bytes sf = BuildDnsServfail(q, *question, DnsExtendedError::kNoReachableAuthority, "timeout");
  auto parsed = ParseDnsResponse(sf, &err);
  ASSERT_TRUE(parsed) << err;
  EXPECT_EQ(parsed->id, 77);
  EXPECT_EQ(parsed->rcode, 2);
  EXPECT_EQ(parsed->question_name, "slow.example");
  EXPECT_EQ(parsed->question_type, 28);
  EXPECT_EQ(sf.size(), question->question_end) << "no OPT for a client without EDNS";
}

TEST(DnsMessage, ServfailCarriesAnExtendedErrorForAnEdnsClient) {
  Bytes q = WithOpt(*BuildDnsQuery(78, "down.example", DnsType::kA), /*dnssec_ok=*/true,
                    {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8});  // a cookie option
  std::string err;
  auto question = ParseDnsQuery(q, &err);
  ASSERT_TRUE(question) << err;
  auto edns = FindDnsQueryEdns(q, *question);
  ASSERT_TRUE(edns);
  EXPECT_EQ(edns->udp_payload, 1232);
  EXPECT_TRUE(edns->dnssec_ok);
  Bytes sf = BuildDnsServfail(q, *question, DnsExtendedError::kNetworkError, "refused");
  auto parsed = ParseDnsResponse(sf, &err);
  ASSERT_TRUE(parsed) << err;
  EXPECT_EQ(parsed->rcode, 2);
  EXPECT_EQ(sf[11], 1) << "ARCOUNT: our OPT";
  size_t at = question->question_end;
  const Bytes opt(sf.begin() + static_cast<long>(at), sf.end());
  const Bytes expected = {0,   0,   41,  0x04, 0xd0, 0,   0,  0x80, 0,  // root, OPT, 1232, DO
                          0,   13,                                      // RDLENGTH
                          0,   15,  0,   9,                             // EDE option, length
                          0,   23,                                      // Network Error
                          'r', 'e', 'f', 'u',  's',  'e', 'd'};
  EXPECT_EQ(opt, expected);
  // Nothing of the client's own options is echoed.
  EXPECT_EQ(sf.size(), at + expected.size());
}

TEST(DnsMessage, BlockedIsNxdomainWithExtendedError15ForAnEdnsClient) {
  Bytes q = WithOpt(*BuildDnsQuery(79, "evil.example", DnsType::kA), /*dnssec_ok=*/false);
  std::string err;
  auto question = ParseDnsQuery(q, &err);
  ASSERT_TRUE(question) << err;
  Bytes nx = BuildDnsBlocked(q, *question, "policy p");
  auto parsed = ParseDnsResponse(nx, &err);
  ASSERT_TRUE(parsed) << err;
  EXPECT_EQ(parsed->id, 79);
  EXPECT_EQ(parsed->rcode, 3);
  EXPECT_EQ(nx[11], 1) << "ARCOUNT: our OPT";
  const Bytes opt(nx.begin() + static_cast<long>(question->question_end), nx.end());
  const Bytes expected = {0,   0,   41,  0x04, 0xd0, 0,   0,   0,  0,  // root, OPT, 1232, no DO
                          0,   14,                                     // RDLENGTH
                          0,   15,  0,   10,                           // EDE option, length
                          0,   15,                                     // Blocked
                          'p', 'o', 'l', 'i',  'c',  'y', ' ', 'p'};
  EXPECT_EQ(opt, expected);
}

TEST(DnsMessage, BlockedWithoutEdnsIsPlainNxdomainAndTextIsBounded) {
  Bytes q = *BuildDnsQuery(80, "evil.example", DnsType::kA);
  auto question = *ParseDnsQuery(q, nullptr);
  EXPECT_EQ(BuildDnsBlocked(q, question, "policy p"), BuildDnsNxdomain(q, question));
  Bytes with_opt = WithOpt(q, false);
  Bytes long_text = BuildDnsBlocked(with_opt, question, std::string(1000, 'x'));
  EXPECT_EQ(long_text.size(), question.question_end + 11 + 6 + 200);
}

TEST(DnsMessage, FindQueryEdnsOnlyForOneVersion0OptAndNothingElse) {
  Bytes q = *BuildDnsQuery(1, "a.example", DnsType::kA);
  auto question = *ParseDnsQuery(q, nullptr);
  EXPECT_FALSE(FindDnsQueryEdns(q, question));
  Bytes opt = WithOpt(q, false);
  EXPECT_TRUE(FindDnsQueryEdns(opt, question));
  Bytes v1 = opt;
  v1[question.question_end + 6] = 1;  // EDNS version 1
  EXPECT_FALSE(FindDnsQueryEdns(v1, question));
  Bytes trailing = opt;
  trailing.push_back(0);
  EXPECT_FALSE(FindDnsQueryEdns(trailing, question));
  Bytes short_rdata = WithOpt(q, false, {0, 10, 0, 8, 1});
  short_rdata.pop_back();  // RDLENGTH says 5, 4 follow
  EXPECT_FALSE(FindDnsQueryEdns(short_rdata, question));
  Bytes not_opt = opt;
  not_opt[question.question_end + 2] = 1;  // TYPE A
  EXPECT_FALSE(FindDnsQueryEdns(not_opt, question));
  Bytes two = opt;
  two[11] = 2;  // ARCOUNT 2: something besides the OPT
  EXPECT_FALSE(FindDnsQueryEdns(two, question));
  // No OPT in the answer to a query whose OPT is not one we read.
  Bytes sf = BuildDnsServfail(v1, question, DnsExtendedError::kNetworkError, "x");
  EXPECT_EQ(sf.size(), question.question_end);
}

TEST(DnsMessage, ParseQueryChecks) {
  std::string err;
  Bytes q = *BuildDnsQuery(1, "a.com", DnsType::kA);
  // EDNS OPT record in the additional section is fine.
  Bytes edns = q;
  edns[11] = 1;
  edns.insert(edns.end(), {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0});
  EXPECT_TRUE(ParseDnsQuery(edns, &err)) << err;

  Bytes r = q;
  r[2] |= 0x80;
  EXPECT_FALSE(ParseDnsQuery(r, &err));
  EXPECT_EQ(err, "not a query (QR=1)");
  Bytes op = q;
  op[2] |= 0x28;  // opcode 5 (UPDATE)
  EXPECT_FALSE(ParseDnsQuery(op, &err));
  EXPECT_EQ(err, "opcode is not QUERY");
  Bytes two = q;
  two[5] = 2;
  EXPECT_FALSE(ParseDnsQuery(two, &err));
  EXPECT_EQ(err, "QDCOUNT is not 1");
  EXPECT_FALSE(ParseDnsQuery(Bytes(q.begin(), q.begin() + 11), &err));
  EXPECT_EQ(err, "shorter than a DNS header");
  // Names with characters a policy could be confused by.
  Bytes star = Header(1, 0x0100, 1, 0);
  PutName(star, "*.a.com");
  Put16(star, 1);
  Put16(star, 1);
  EXPECT_FALSE(ParseDnsQuery(star, &err));
  Bytes dot = Header(1, 0x0100, 1, 0);
  dot.insert(dot.end(), {5, 'a', '.', 'c', 'o', 'm', 0, 0, 1, 0, 1});  // one label "a.com"
  EXPECT_FALSE(ParseDnsQuery(dot, &err));
  Bytes nul = Header(1, 0x0100, 1, 0);
  nul.insert(nul.end(), {3, 'a', 0, 'b', 0, 0, 1, 0, 1});
  EXPECT_FALSE(ParseDnsQuery(nul, &err));
  Bytes root = Header(1, 0x0100, 1, 0);
  root.insert(root.end(), {0, 0, 2, 0, 1});
  EXPECT_FALSE(ParseDnsQuery(root, &err));
  // Every truncation fails cleanly.
  for (size_t n = 0; n < q.size(); ++n) {
    EXPECT_FALSE(ParseDnsQuery(Bytes(q.begin(), q.begin() + n), &err)) << n;
  }
}

TEST(DnsMessage, ParseResponseFollowsCnameAndCompression) {
  std::string err;
  auto r = ParseDnsResponse(CnameResponse(), &err);
  ASSERT_TRUE(r) << err;
  EXPECT_EQ(r->id, 0xbeef);
  EXPECT_EQ(r->rcode, 0);
  EXPECT_EQ(r->question_name, "www.example.com");
  EXPECT_EQ(r->question_type, 1);
  ASSERT_EQ(r->answers.size(), 2u);
  std::array<uint8_t, 16> a1 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};
  EXPECT_EQ(r->answers[0].addr, a1);
  EXPECT_TRUE(r->answers[0].is_v4);
  EXPECT_EQ(r->answers[0].ttl, 60u);
  EXPECT_EQ(r->answers[1].addr[15], 2);
  EXPECT_EQ(r->min_ttl, 60u);
}

TEST(DnsMessage, ParseResponseAaaaAndNxdomain) {
  Bytes b = Header(7, 0x8180, 1, 1);
  PutName(b, "v6.example");
  Put16(b, 28);
  Put16(b, 1);
  PutPointer(b, 12);
  Bytes addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  PutRr(b, 28, 0x80000000u, addr);  // TTL with the top bit set counts as 0
  std::string err;
  auto r = ParseDnsResponse(b, &err);
  ASSERT_TRUE(r) << err;
  ASSERT_EQ(r->answers.size(), 1u);
  EXPECT_FALSE(r->answers[0].is_v4);
  EXPECT_EQ(r->answers[0].addr[0], 0x20);
  EXPECT_EQ(r->min_ttl, 0u);

  Bytes nx = Header(8, 0x8183, 1, 0);
  PutName(nx, "nope.example");
  Put16(nx, 1);
  Put16(nx, 1);
  auto n = ParseDnsResponse(nx, &err);
  ASSERT_TRUE(n) << err;
  EXPECT_EQ(n->rcode, 3);
  EXPECT_TRUE(n->answers.empty());
  EXPECT_EQ(n->min_ttl, 0u);
}

TEST(DnsMessage, ParseResponseRejects) {
  std::string err;
  Bytes good = CnameResponse();
  Bytes q = good;
  q[2] &= 0x7f;
  EXPECT_FALSE(ParseDnsResponse(q, &err));
  EXPECT_EQ(err, "not a response (QR=0)");
  Bytes tc = good;
  tc[2] |= 0x02;
  EXPECT_FALSE(ParseDnsResponse(tc, &err));
  EXPECT_EQ(err, "truncated response (TC=1)");
  Bytes qd = good;
  qd[5] = 0;
  EXPECT_FALSE(ParseDnsResponse(qd, &err));
  // ANCOUNT larger than the records present.
  Bytes an = good;
  an[7] = 6;
  EXPECT_FALSE(ParseDnsResponse(an, &err));

  Bytes a5 = Header(1, 0x8180, 1, 1);
  PutName(a5, "a.b");
  Put16(a5, 1);
  Put16(a5, 1);
  PutPointer(a5, 12);
  PutRr(a5, 1, 1, {1, 2, 3, 4, 5});
  EXPECT_FALSE(ParseDnsResponse(a5, &err));
  EXPECT_EQ(err, "A record with RDLENGTH != 4");
}

TEST(DnsMessage, CompressionLoopsAndBadPointers) {
  std::string err;
  // Question name is a pointer to itself.
  Bytes self = Header(1, 0x8180, 1, 0);
  PutPointer(self, 12);
  Put16(self, 1);
  Put16(self, 1);
  EXPECT_FALSE(ParseDnsResponse(self, &err));
  EXPECT_EQ(err, "forward or looping compression pointer");
  // Forward pointer.
  Bytes fwd = Header(1, 0x8180, 1, 0);
  PutPointer(fwd, 20);
  Put16(fwd, 1);
  Put16(fwd, 1);
  fwd.insert(fwd.end(), {1, 'a', 0});
  EXPECT_FALSE(ParseDnsResponse(fwd, &err));
  // Two answers whose names point at each other: the later one points back, the
  // earlier one would have to point forward.
  Bytes mutual = Header(1, 0x8180, 1, 1);
  PutName(mutual, "a.b");
  Put16(mutual, 1);
  Put16(mutual, 1);
  size_t at = mutual.size();
  mutual.push_back(1);
  mutual.push_back('x');
  PutPointer(mutual, static_cast<uint16_t>(at + 4));
  PutPointer(mutual, static_cast<uint16_t>(at));
  EXPECT_FALSE(ParseDnsResponse(mutual, &err));
  // Pointer into the header.
  Bytes hdr = Header(1, 0x8180, 1, 0);
  PutPointer(hdr, 0);
  Put16(hdr, 1);
  Put16(hdr, 1);
  EXPECT_FALSE(ParseDnsResponse(hdr, &err));
  EXPECT_EQ(err, "compression pointer into the header");
  // Reserved label types 0x40 / 0x80.
  Bytes ext = Header(1, 0x8180, 1, 0);
  ext.insert(ext.end(), {0x41, 0, 0, 1, 0, 1});
  EXPECT_FALSE(ParseDnsResponse(ext, &err));
  EXPECT_EQ(err, "unsupported label type");
  // A chain of backward pointers adding up to more than 255 bytes of name: the
  // chain lives in the RDATA of a TXT record, a second record's owner uses it.
  Bytes chain = Header(1, 0x8180, 1, 2);
  PutName(chain, "q");
  Put16(chain, 1);
  Put16(chain, 1);
  PutPointer(chain, 12);
  Put16(chain, 16);
  Put16(chain, 1);
  Put32(chain, 1);
  size_t rdlen_at = chain.size();
  Put16(chain, 0);
  size_t rdata_at = chain.size();
  chain.insert(chain.end(), {3, 'a', 'a', 'a', 0});
  size_t prev = rdata_at;
  for (int i = 0; i < 100; ++i) {
    size_t here = chain.size();
    chain.insert(chain.end(), {3, 'a', 'a', 'a'});
    PutPointer(chain, static_cast<uint16_t>(prev));
    prev = here;
  }
  size_t rdlen = chain.size() - rdata_at;
  chain[rdlen_at] = static_cast<uint8_t>(rdlen >> 8);
  chain[rdlen_at + 1] = static_cast<uint8_t>(rdlen);
  PutPointer(chain, static_cast<uint16_t>(prev));
  PutRr(chain, 1, 1, {1, 2, 3, 4});
  EXPECT_FALSE(ParseDnsResponse(chain, &err));
}

TEST(DnsMessage, CnameLoop) {
  Bytes b = Header(1, 0x8180, 1, 2);
  PutName(b, "a.x");
  Put16(b, 1);
  Put16(b, 1);
  Bytes to_b, to_a;
  PutName(to_b, "b.x");
  PutName(to_a, "a.x");
  PutPointer(b, 12);
  PutRr(b, 5, 10, to_b);
  PutName(b, "b.x");
  PutRr(b, 5, 10, to_a);
  std::string err;
  EXPECT_FALSE(ParseDnsResponse(b, &err));
  EXPECT_EQ(err, "CNAME loop");
}

TEST(DnsMessage, EveryTruncationFailsCleanly) {
  Bytes good = CnameResponse();
  std::string err;
  ASSERT_TRUE(ParseDnsResponse(good, &err)) << err;
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ParseDnsResponse(Bytes(good.begin(), good.begin() + n), &err)) << n;
    EXPECT_FALSE(err.empty());
  }
  // And a null error pointer is fine.
  EXPECT_FALSE(ParseDnsResponse(Bytes(good.begin(), good.begin() + 20), nullptr));
}

}  // namespace
}  // namespace egressd::protocol
