#include "userspace/protocol/dns_message.h"

#include <algorithm>
#include <cstdio>

namespace egressd::protocol {
namespace {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxNameWire = 255;
constexpr int kMaxPointerHops = 64;
constexpr int kMaxCnameHops = 16;
constexpr size_t kMaxAnswers = 256;

bool IsNameChar(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

char Lower(uint8_t c) {
  return static_cast<char>((c >= 'A' && c <= 'Z') ? c + 32 : c);
}

uint16_t Get16(std::span<const uint8_t> d, size_t off) {
  return static_cast<uint16_t>((d[off] << 8) | d[off + 1]);
}

uint32_t Get32(std::span<const uint8_t> d, size_t off) {
  return (uint32_t{d[off]} << 24) | (uint32_t{d[off + 1]} << 16) | (uint32_t{d[off + 2]} << 8) |
         d[off + 3];
}

bool SetError(std::string* error, const char* why) {
  if (error != nullptr) *error = why;
  return false;
}

// Reads a (possibly compressed) name at *pos. On success *pos is just past the
// name in the original position and *out is the lowercased dotted name ("" for
// the root). strict: only DNS characters in labels; otherwise other bytes are
// written as \DDD so that names cannot be confused with each other.
bool ReadName(std::span<const uint8_t> msg, size_t* pos, bool strict, std::string* out,
              std::string* error) {
  out->clear();
  size_t p = *pos;
  size_t wire_len = 0;
  int hops = 0;
  bool jumped = false;
  while (true) {
    if (p >= msg.size()) return SetError(error, "name runs past the end of the message");
    uint8_t len = msg[p];
    if ((len & 0xc0) == 0xc0) {
      if (p + 1 >= msg.size()) return SetError(error, "truncated compression pointer");
      size_t target = (static_cast<size_t>(len & 0x3f) << 8) | msg[p + 1];
      // Only strictly backward pointers: no loops are possible, hops bound the work.
      if (target >= p) return SetError(error, "forward or looping compression pointer");
      if (target < kHeaderSize) return SetError(error, "compression pointer into the header");
      if (++hops > kMaxPointerHops) return SetError(error, "too many compression pointers");
      if (!jumped) *pos = p + 2;
      jumped = true;
      p = target;
      continue;
    }
    if ((len & 0xc0) != 0) return SetError(error, "unsupported label type");
    wire_len += 1 + len;
    if (wire_len > kMaxNameWire) return SetError(error, "name longer than 255 bytes");
    if (len == 0) {
      if (!jumped) *pos = p + 1;
      return true;
    }
    if (p + 1 + len > msg.size()) return SetError(error, "label runs past the end of the message");
    if (!out->empty()) out->push_back('.');
    for (size_t i = 0; i < len; ++i) {
      uint8_t c = msg[p + 1 + i];
      if (IsNameChar(c)) {
        out->push_back(Lower(c));
      } else if (strict) {
        return SetError(error, "name has a character outside [A-Za-z0-9-_]");
      } else {
        char buf[5];
        std::snprintf(buf, sizeof buf, "\\%03u", static_cast<unsigned>(c));
        out->append(buf);
      }
    }
    p += 1 + len;
  }
}

struct Question {
  std::string name;
  uint16_t type;
  uint16_t klass;
};

bool ReadQuestion(std::span<const uint8_t> msg, size_t* pos, bool strict, Question* q,
                  std::string* error) {
  if (!ReadName(msg, pos, strict, &q->name, error)) return false;
  if (msg.size() - *pos < 4) return SetError(error, "truncated question");
  q->type = Get16(msg, *pos);
  q->klass = Get16(msg, *pos + 2);
  *pos += 4;
  return true;
}

}  // namespace

std::optional<std::vector<uint8_t>> BuildDnsQuery(uint16_t id, std::string_view name,
                                                  DnsType type) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return std::nullopt;
  std::vector<uint8_t> out = {static_cast<uint8_t>(id >> 8),
                              static_cast<uint8_t>(id),
                              0x01,  // RD
                              0x00,
                              0,
                              1,  // QDCOUNT
                              0,
                              0,
                              0,
                              0,
                              0,
                              0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return std::nullopt;
    out.push_back(static_cast<uint8_t>(label.size()));
    for (char c : label) {
      if (!IsNameChar(static_cast<uint8_t>(c))) return std::nullopt;
      out.push_back(static_cast<uint8_t>(Lower(static_cast<uint8_t>(c))));
    }
    start = dot + 1;
  }
  out.push_back(0);
  auto t = static_cast<uint16_t>(type);
  out.insert(out.end(), {static_cast<uint8_t>(t >> 8), static_cast<uint8_t>(t), 0, kDnsClassIn});
  return out;
}

std::optional<DnsResponse> ParseDnsResponse(std::span<const uint8_t> data, std::string* error) {
  if (data.size() < kHeaderSize) return SetError(error, "shorter than a DNS header"), std::nullopt;
  const uint16_t flags = Get16(data, 2);
  if (!(flags & 0x8000)) return SetError(error, "not a response (QR=0)"), std::nullopt;
  if (flags & 0x0200) return SetError(error, "truncated response (TC=1)"), std::nullopt;
  if (Get16(data, 4) != 1) return SetError(error, "QDCOUNT is not 1"), std::nullopt;
  const uint16_t ancount = Get16(data, 6);

  DnsResponse resp{};
  resp.id = Get16(data, 0);
  resp.rcode = static_cast<uint8_t>(flags & 0x0f);
  size_t pos = kHeaderSize;
  Question q;
  if (!ReadQuestion(data, &pos, /*strict=*/false, &q, error)) return std::nullopt;
  resp.question_name = q.name;
  resp.question_type = q.type;

  struct Record {
    std::string owner;
    uint16_t type;
    uint32_t ttl;
    std::string cname;             // type CNAME
    std::array<uint8_t, 16> addr;  // A / AAAA
  };
  std::vector<Record> records;
  for (uint16_t i = 0; i < ancount; ++i) {
    Record r{};
    if (!ReadName(data, &pos, false, &r.owner, error)) return std::nullopt;
    if (data.size() - pos < 10) return SetError(error, "truncated resource record"), std::nullopt;
    r.type = Get16(data, pos);
    const uint16_t klass = Get16(data, pos + 2);
    r.ttl = Get32(data, pos + 4);
    if (r.ttl > 0x7fffffff) r.ttl = 0;  // RFC 2181 8: values with the top bit set mean zero
    const uint16_t rdlen = Get16(data, pos + 8);
    pos += 10;
    if (data.size() - pos < rdlen) return SetError(error, "RDATA runs past the end"), std::nullopt;
    const size_t rdata = pos;
    pos += rdlen;
    if (klass != kDnsClassIn) continue;
    if (r.type == static_cast<uint16_t>(DnsType::kA)) {
      if (rdlen != 4) return SetError(error, "A record with RDLENGTH != 4"), std::nullopt;
      r.addr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(rdata), 4, r.addr.begin() + 12);
    } else if (r.type == static_cast<uint16_t>(DnsType::kAAAA)) {
      if (rdlen != 16) return SetError(error, "AAAA record with RDLENGTH != 16"), std::nullopt;
      std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(rdata), 16, r.addr.begin());
    } else if (r.type == kDnsTypeCname) {
      size_t cpos = rdata;
      if (!ReadName(data.first(rdata + rdlen), &cpos, false, &r.cname, error)) return std::nullopt;
      if (cpos != rdata + rdlen)
        return SetError(error, "CNAME RDATA length mismatch"), std::nullopt;
    } else {
      continue;
    }
    if (records.size() >= kMaxAnswers) return SetError(error, "too many answers"), std::nullopt;
    records.push_back(std::move(r));
  }

  // Owners reachable from the question name via CNAMEs (bounded chain).
  std::vector<std::string> owners = {q.name};
  uint32_t min_ttl = UINT32_MAX;
  for (int hop = 0; hop < kMaxCnameHops; ++hop) {
    const std::string& current = owners.back();
    const Record* next = nullptr;
    for (const Record& r : records) {
      if (r.type == kDnsTypeCname && r.owner == current) {
        next = &r;
        break;
      }
    }
    if (next == nullptr) break;
    if (std::find(owners.begin(), owners.end(), next->cname) != owners.end()) {
      return SetError(error, "CNAME loop"), std::nullopt;
    }
    min_ttl = std::min(min_ttl, next->ttl);
    owners.push_back(next->cname);
  }
  for (const Record& r : records) {
    if (r.type == kDnsTypeCname) continue;
    if (std::find(owners.begin(), owners.end(), r.owner) == owners.end()) continue;
    DnsAnswer a{r.addr, r.type == static_cast<uint16_t>(DnsType::kA), r.ttl};
    resp.answers.push_back(a);
    min_ttl = std::min(min_ttl, r.ttl);
  }
  resp.min_ttl = resp.answers.empty() ? 0 : min_ttl;
  return resp;
}

std::optional<DnsQuestion> ParseDnsQuery(std::span<const uint8_t> data, std::string* error) {
  if (data.size() < kHeaderSize) return SetError(error, "shorter than a DNS header"), std::nullopt;
  const uint16_t flags = Get16(data, 2);
  if (flags & 0x8000) return SetError(error, "not a query (QR=1)"), std::nullopt;
  if (((flags >> 11) & 0x0f) != 0) return SetError(error, "opcode is not QUERY"), std::nullopt;
  if (Get16(data, 4) != 1) return SetError(error, "QDCOUNT is not 1"), std::nullopt;
  size_t pos = kHeaderSize;
  Question q;
  if (!ReadQuestion(data, &pos, /*strict=*/true, &q, error)) return std::nullopt;
  if (q.name.empty()) return SetError(error, "query for the root name"), std::nullopt;
  return DnsQuestion{Get16(data, 0), std::move(q.name), q.type, pos};
}

namespace {

constexpr uint8_t kRcodeServfail = 2;
constexpr uint8_t kRcodeNxdomain = 3;
constexpr uint16_t kDnsTypeOpt = 41;
constexpr uint16_t kEdnsOptionExtendedError = 15;
constexpr uint16_t kOurUdpPayload = 1232;  // what the forwarder itself advertises upstream
constexpr size_t kMaxExtraText = 200;

// The header and question of `query`, turned into an answer with `rcode`
// and no records.
std::vector<uint8_t> ErrorAnswer(std::span<const uint8_t> query, const DnsQuestion& question,
                                 uint8_t rcode) {
  std::vector<uint8_t> out(query.begin(), query.begin() + question.question_end);
  const uint8_t rd = out[2] & 0x01;
  out[2] = 0x80 | rd;                          // QR=1, opcode QUERY, AA=0, TC=0, RD as asked
  out[3] = 0x80 | rcode;                       // RA=1
  for (size_t i = 6; i < 12; ++i) out[i] = 0;  // no answer, authority or additional records
  return out;
}

void Append16(std::vector<uint8_t>* out, size_t v) {
  out->push_back(static_cast<uint8_t>(v >> 8));
  out->push_back(static_cast<uint8_t>(v & 0xff));
}

}  // namespace

std::vector<uint8_t> BuildDnsNxdomain(std::span<const uint8_t> query, const DnsQuestion& question) {
  return ErrorAnswer(query, question, kRcodeNxdomain);
}

std::optional<DnsQueryEdns> FindDnsQueryEdns(std::span<const uint8_t> query,
                                             const DnsQuestion& question) {
  if (query.size() < kHeaderSize || Get16(query, 6) != 0 || Get16(query, 8) != 0 ||
      Get16(query, 10) != 1)
    return std::nullopt;
  // Root owner name, TYPE, CLASS, TTL (extended RCODE, VERSION, flags), RDLENGTH.
  const size_t at = question.question_end;
  if (query.size() < at + 11 || query[at] != 0 || Get16(query, at + 1) != kDnsTypeOpt)
    return std::nullopt;
  if (query[at + 6] != 0) return std::nullopt;  // an EDNS version we do not speak
  if (at + 11 + Get16(query, at + 9) != query.size()) return std::nullopt;
  return DnsQueryEdns{Get16(query, at + 3), (query[at + 7] & 0x80) != 0};
}

namespace {

// ErrorAnswer, plus (when the client sent an OPT record) an OPT record of
// ours with one Extended DNS Error option.
std::vector<uint8_t> ErrorAnswerWithEde(std::span<const uint8_t> query, const DnsQuestion& question,
                                        uint8_t rcode, DnsExtendedError code,
                                        std::string_view text) {
  std::vector<uint8_t> out = ErrorAnswer(query, question, rcode);
  const auto edns = FindDnsQueryEdns(query, question);
  if (!edns) return out;  // OPT only in answer to OPT (RFC 6891 7)
  text = text.substr(0, kMaxExtraText);
  out[11] = 1;       // ARCOUNT
  out.push_back(0);  // root owner name
  Append16(&out, kDnsTypeOpt);
  Append16(&out, kOurUdpPayload);
  out.push_back(0);                           // extended RCODE
  out.push_back(0);                           // VERSION
  out.push_back(edns->dnssec_ok ? 0x80 : 0);  // DO echoed, Z
  out.push_back(0);
  Append16(&out, 4 + 2 + text.size());  // RDLENGTH: one option
  Append16(&out, kEdnsOptionExtendedError);
  Append16(&out, 2 + text.size());
  Append16(&out, static_cast<uint16_t>(code));
  out.insert(out.end(), text.begin(), text.end());
  return out;
}

}  // namespace

std::vector<uint8_t> BuildDnsServfail(std::span<const uint8_t> query, const DnsQuestion& question,
                                      DnsExtendedError code, std::string_view text) {
  return ErrorAnswerWithEde(query, question, kRcodeServfail, code, text);
}

std::vector<uint8_t> BuildDnsBlocked(std::span<const uint8_t> query, const DnsQuestion& question,
                                     std::string_view text) {
  return ErrorAnswerWithEde(query, question, kRcodeNxdomain, DnsExtendedError::kBlocked, text);
}

}  // namespace egressd::protocol
