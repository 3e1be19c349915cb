#include "userspace/protocol/dns_message.h"

#include <algorithm>

namespace egressd::protocol {
namespace {

constexpr size_t kHeader = 12;
constexpr int kMaxPointerHops = 32;
constexpr size_t kMaxRecords = 256;

bool Fail(std::string* error, const char* why) {
  if (error) *error = why;
  return false;
}

uint16_t U16(std::span<const uint8_t> d, size_t off) {
  return static_cast<uint16_t>(d[off] << 8 | d[off + 1]);
}

// Reads a possibly compressed name at `off`; `next` is where the record
// continues after the name.
bool ReadName(std::span<const uint8_t> d, size_t off, std::string& name, size_t& next,
              std::string* error) {
  name.clear();
  bool jumped = false;
  int hops = 0;
  for (;;) {
    if (off >= d.size()) return Fail(error, "name runs past the message");
    uint8_t len = d[off];
    if ((len & 0xc0) == 0xc0) {
      if (off + 1 >= d.size()) return Fail(error, "truncated compression pointer");
      if (++hops > kMaxPointerHops) return Fail(error, "compression pointer loop");
      size_t target = static_cast<size_t>((len & 0x3f) << 8 | d[off + 1]);
      if (!jumped) next = off + 2;
      jumped = true;
      off = target;
      continue;
    }
    if (len & 0xc0) return Fail(error, "unsupported label type");
    if (len == 0) {
      if (!jumped) next = off + 1;
      if (!name.empty()) name.pop_back();  // trailing '.'
      return true;
    }
    if (off + 1 + len > d.size()) return Fail(error, "label runs past the message");
    for (size_t i = 0; i < len; ++i) {
      char c = static_cast<char>(d[off + 1 + i]);
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      name.push_back(c);
    }
    name.push_back('.');
    if (name.size() > 255) return Fail(error, "name longer than 255");
    off += 1 + len;
  }
}

bool ValidQueryName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    if (++label > 63) return false;
  }
  return label > 0;
}

}  // namespace

std::optional<std::vector<uint8_t>> BuildDnsQuery(uint16_t id, std::string_view name, DnsType type) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (!ValidQueryName(name)) return std::nullopt;
  std::vector<uint8_t> q = {static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 0x01, 0x00,
                            0, 1, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    q.push_back(static_cast<uint8_t>(dot - start));
    for (size_t i = start; i < dot; ++i) q.push_back(static_cast<uint8_t>(name[i]));
    start = dot + 1;
  }
  q.push_back(0);
  uint16_t t = static_cast<uint16_t>(type);
  q.insert(q.end(), {static_cast<uint8_t>(t >> 8), static_cast<uint8_t>(t), 0, 1});
  return q;
}

std::optional<DnsResponse> ParseDnsResponse(std::span<const uint8_t> d, std::string* error) {
  if (d.size() < kHeader) return Fail(error, "shorter than a DNS header"), std::nullopt;
  DnsResponse r;
  r.id = U16(d, 0);
  uint16_t flags = U16(d, 2);
  if (!(flags & 0x8000)) return Fail(error, "not a response"), std::nullopt;
  if (flags & 0x0200) return Fail(error, "truncated response (TC)"), std::nullopt;
  r.rcode = flags & 0x0f;
  uint16_t qd = U16(d, 4), an = U16(d, 6);
  if (qd != 1) return Fail(error, "expected exactly one question"), std::nullopt;
  if (an > kMaxRecords) return Fail(error, "too many answers"), std::nullopt;
  size_t off = kHeader;
  if (!ReadName(d, off, r.question_name, off, error)) return std::nullopt;
  if (off + 4 > d.size()) return Fail(error, "truncated question"), std::nullopt;
  r.question_type = U16(d, off);
  off += 4;
  // Names that lead to the question through CNAMEs, in order of appearance.
  std::vector<std::string> owners = {r.question_name};
  r.min_ttl = UINT32_MAX;
  for (uint16_t i = 0; i < an; ++i) {
    std::string owner;
    if (!ReadName(d, off, owner, off, error)) return std::nullopt;
    if (off + 10 > d.size()) return Fail(error, "truncated record"), std::nullopt;
    uint16_t type = U16(d, off);
    uint32_t ttl = static_cast<uint32_t>(U16(d, off + 4)) << 16 | U16(d, off + 6);
    uint16_t rdlen = U16(d, off + 8);
    off += 10;
    if (off + rdlen > d.size()) return Fail(error, "record data runs past the message"), std::nullopt;
    bool ours = std::find(owners.begin(), owners.end(), owner) != owners.end();
    if (ours && type == 5) {
      std::string target;
      size_t ignored;
      if (!ReadName(d, off, target, ignored, error)) return std::nullopt;
      if (owners.size() < 16) owners.push_back(target);
    } else if (ours && (type == 1 || type == 28)) {
      DnsAnswer a;
      a.ttl = ttl;
      if (type == 1) {
        if (rdlen != 4) return Fail(error, "A record of the wrong size"), std::nullopt;
        a.is_v4 = true;
        a.addr[10] = a.addr[11] = 0xff;
        std::copy(d.begin() + off, d.begin() + off + 4, a.addr.begin() + 12);
      } else {
        if (rdlen != 16) return Fail(error, "AAAA record of the wrong size"), std::nullopt;
        std::copy(d.begin() + off, d.begin() + off + 16, a.addr.begin());
      }
      r.answers.push_back(a);
      r.min_ttl = std::min(r.min_ttl, ttl);
    }
    off += rdlen;
  }
  if (r.answers.empty()) r.min_ttl = 0;
  return r;
}

std::optional<DnsQuestion> ParseDnsQuery(std::span<const uint8_t> d, std::string* error) {
  if (d.size() < kHeader) return Fail(error, "shorter than a DNS header"), std::nullopt;
  uint16_t flags = U16(d, 2);
  if (flags & 0x8000) return Fail(error, "a response, not a query"), std::nullopt;
  if (U16(d, 4) != 1) return Fail(error, "expected exactly one question"), std::nullopt;
  DnsQuestion q;
  q.id = U16(d, 0);
  size_t off = kHeader;
  if (!ReadName(d, off, q.name, off, error)) return std::nullopt;
  if (off + 4 > d.size()) return Fail(error, "truncated question"), std::nullopt;
  q.type = U16(d, off);
  return q;
}

}  // namespace egressd::protocol
