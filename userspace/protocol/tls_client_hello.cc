#include "userspace/protocol/tls_client_hello.h"

#include <set>
#include <vector>

namespace egressd::protocol {
namespace {

constexpr uint8_t kHandshake = 0x16;
constexpr uint8_t kClientHello = 0x01;
constexpr size_t kMaxRecord = 16384 + 2048;
constexpr size_t kMaxHello = 64 * 1024;

// Bounds-checked big-endian reader over the reassembled handshake message.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> d) : d_(d) {}
  bool U8(uint8_t& v) {
    if (pos_ + 1 > d_.size()) return false;
    v = d_[pos_++];
    return true;
  }
  bool U16(uint16_t& v) {
    if (pos_ + 2 > d_.size()) return false;
    v = static_cast<uint16_t>(d_[pos_] << 8 | d_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool Skip(size_t n) {
    if (pos_ + n > d_.size()) return false;
    pos_ += n;
    return true;
  }
  bool Sub(size_t n, Reader& out) {
    if (pos_ + n > d_.size()) return false;
    out = Reader(d_.subspan(pos_, n));
    pos_ += n;
    return true;
  }
  size_t left() const { return d_.size() - pos_; }
  const uint8_t* here() const { return d_.data() + pos_; }

 private:
  std::span<const uint8_t> d_;
  size_t pos_ = 0;
};

ClientHelloResult Malformed(std::string why) {
  return {ClientHelloStatus::kMalformed, std::nullopt, std::move(why)};
}

bool ValidHostChar(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

ClientHelloResult ParseHello(std::span<const uint8_t> body) {
  Reader r(body);
  uint16_t version;
  uint8_t sid_len, comp_len;
  uint16_t suites_len;
  if (!r.U16(version) || !r.Skip(32)) return Malformed("ClientHello too short");
  if (!r.U8(sid_len) || sid_len > 32 || !r.Skip(sid_len)) return Malformed("bad session id");
  if (!r.U16(suites_len) || suites_len < 2 || suites_len % 2 || !r.Skip(suites_len))
    return Malformed("bad cipher suites");
  if (!r.U8(comp_len) || comp_len < 1 || !r.Skip(comp_len)) return Malformed("bad compression methods");
  ClientHelloResult result{ClientHelloStatus::kOk, std::nullopt, ""};
  if (r.left() == 0) return result;  // no extensions at all
  uint16_t ext_total;
  Reader exts(body);
  if (!r.U16(ext_total) || !r.Sub(ext_total, exts) || r.left() != 0)
    return Malformed("bad extensions length");
  std::set<uint16_t> seen;
  while (exts.left() > 0) {
    uint16_t type, len;
    Reader ext(body);
    if (!exts.U16(type) || !exts.U16(len) || !exts.Sub(len, ext)) return Malformed("truncated extension");
    if (!seen.insert(type).second) return Malformed("duplicate extension " + std::to_string(type));
    if (type != 0) continue;
    uint16_t list_len;
    Reader list(body);
    if (!ext.U16(list_len) || !ext.Sub(list_len, list) || ext.left() != 0)
      return Malformed("bad server_name list");
    while (list.left() > 0) {
      uint8_t name_type;
      uint16_t name_len;
      if (!list.U8(name_type) || !list.U16(name_len) || name_len > list.left())
        return Malformed("bad server_name entry");
      const uint8_t* name = list.here();
      list.Skip(name_len);
      if (name_type != 0) continue;  // only host_name is defined
      if (result.sni) return Malformed("more than one SNI host name");
      if (name_len == 0 || name_len > 255) return Malformed("SNI host name length");
      std::string host;
      for (uint16_t i = 0; i < name_len; ++i) {
        if (!ValidHostChar(name[i])) return Malformed("SNI host name has an invalid character");
        host.push_back(static_cast<char>(tolower(name[i])));
      }
      result.sni = std::move(host);
    }
  }
  return result;
}

}  // namespace

ClientHelloResult ParseClientHello(std::span<const uint8_t> data) {
  // Reassemble the handshake stream from consecutive handshake records.
  std::vector<uint8_t> hs;
  size_t off = 0;
  for (;;) {
    if (data.size() - off < 5) {
      if (off == 0 && !data.empty() && data[0] != kHandshake) return {ClientHelloStatus::kNotTls, {}, ""};
      if (off == 0 && data.size() >= 2 && data[1] != 3) return {ClientHelloStatus::kNotTls, {}, ""};
      return {ClientHelloStatus::kNeedMore, {}, ""};
    }
    const uint8_t* rec = data.data() + off;
    if (rec[0] != kHandshake || rec[1] != 3) {
      if (off == 0) return {ClientHelloStatus::kNotTls, {}, ""};
      return Malformed("non-handshake record inside the ClientHello");
    }
    size_t len = static_cast<size_t>(rec[3] << 8 | rec[4]);
    if (len == 0 || len > kMaxRecord) return Malformed("bad record length");
    if (data.size() - off - 5 < len) {
      // Partial record: use what we have only to learn the message length.
      hs.insert(hs.end(), rec + 5, data.data() + data.size());
    } else {
      hs.insert(hs.end(), rec + 5, rec + 5 + len);
    }
    if (hs.size() >= 4) {
      if (hs[0] != kClientHello) return Malformed("first handshake message is not a ClientHello");
      size_t msg_len = static_cast<size_t>(hs[1]) << 16 | static_cast<size_t>(hs[2]) << 8 | hs[3];
      if (msg_len > kMaxHello) return Malformed("ClientHello too large");
      if (hs.size() >= 4 + msg_len)
        return ParseHello(std::span<const uint8_t>(hs).subspan(4, msg_len));
    }
    if (data.size() - off - 5 < len) return {ClientHelloStatus::kNeedMore, {}, ""};
    off += 5 + len;
  }
}

}  // namespace egressd::protocol
