#include "userspace/protocol/tls_client_hello.h"

#include <algorithm>
#include <vector>

namespace egressd::protocol {
namespace {

constexpr uint8_t kContentTypeHandshake = 0x16;
constexpr uint8_t kHandshakeClientHello = 0x01;
constexpr size_t kRecordHeaderSize = 5;
constexpr size_t kMaxRecordPayload = 16384;  // TLSPlaintext.length limit, 2^14
constexpr uint16_t kExtServerName = 0x0000;
constexpr uint8_t kNameTypeHostName = 0x00;

ClientHelloResult Result(ClientHelloStatus status, std::string error = {}) {
  return ClientHelloResult{status, std::nullopt, std::move(error)};
}

// Bounds-checked big-endian reader over a byte span. Every read reports
// failure instead of reading past the end.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}
  size_t remaining() const { return data_.size() - pos_; }
  bool U8(uint8_t* v) {
    if (remaining() < 1) return false;
    *v = data_[pos_++];
    return true;
  }
  bool U16(uint16_t* v) {
    if (remaining() < 2) return false;
    *v = static_cast<uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool U24(uint32_t* v) {
    if (remaining() < 3) return false;
    *v = (uint32_t{data_[pos_]} << 16) | (uint32_t{data_[pos_ + 1]} << 8) | data_[pos_ + 2];
    pos_ += 3;
    return true;
  }
  bool Bytes(size_t n, std::span<const uint8_t>* out) {
    if (remaining() < n) return false;
    *out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool Skip(size_t n) {
    if (remaining() < n) return false;
    pos_ += n;
    return true;
  }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

bool IsHostChar(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// Parses the server_name extension body (RFC 6066 section 3).
ClientHelloResult ParseServerName(std::span<const uint8_t> body) {
  Reader r(body);
  uint16_t list_len;
  if (!r.U16(&list_len) || list_len != r.remaining()) {
    return Result(ClientHelloStatus::kMalformed, "server_name list length mismatch");
  }
  if (list_len == 0) return Result(ClientHelloStatus::kMalformed, "empty server_name list");
  std::optional<std::string> host;
  while (r.remaining() > 0) {
    uint8_t type;
    uint16_t len;
    std::span<const uint8_t> name;
    if (!r.U8(&type) || !r.U16(&len) || !r.Bytes(len, &name)) {
      return Result(ClientHelloStatus::kMalformed, "truncated server_name entry");
    }
    if (type != kNameTypeHostName) continue;  // unknown name types are skipped (RFC 6066)
    if (host) return Result(ClientHelloStatus::kMalformed, "more than one SNI host_name");
    std::string s(name.begin(), name.end());
    // A fully qualified name's one trailing dot goes, as in the Host header:
    // "example.com." is judged (and reported) as "example.com".
    if (!s.empty() && s.back() == '.') s.pop_back();
    if (!IsValidSniHostName(s)) {
      return Result(ClientHelloStatus::kMalformed, "SNI host_name is not a valid DNS name");
    }
    std::transform(s.begin(), s.end(), s.begin(),
                   [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; });
    host = std::move(s);
  }
  if (!host) return Result(ClientHelloStatus::kMalformed, "server_name without a host_name");
  ClientHelloResult ok{ClientHelloStatus::kOk, std::move(host), {}};
  return ok;
}

// Parses a complete ClientHello body (after the 4-byte handshake header).
ClientHelloResult ParseHelloBody(std::span<const uint8_t> body) {
  Reader r(body);
  uint16_t legacy_version;
  if (!r.U16(&legacy_version) || !r.Skip(32)) {
    return Result(ClientHelloStatus::kMalformed, "ClientHello too short");
  }
  if ((legacy_version >> 8) != 3) {
    return Result(ClientHelloStatus::kMalformed, "unsupported ClientHello version");
  }
  uint8_t session_id_len;
  if (!r.U8(&session_id_len) || session_id_len > 32 || !r.Skip(session_id_len)) {
    return Result(ClientHelloStatus::kMalformed, "bad session_id");
  }
  uint16_t suites_len;
  if (!r.U16(&suites_len) || suites_len < 2 || suites_len % 2 != 0 || !r.Skip(suites_len)) {
    return Result(ClientHelloStatus::kMalformed, "bad cipher_suites");
  }
  uint8_t compression_len;
  if (!r.U8(&compression_len) || compression_len < 1 || !r.Skip(compression_len)) {
    return Result(ClientHelloStatus::kMalformed, "bad compression_methods");
  }
  if (r.remaining() == 0) return Result(ClientHelloStatus::kOk);  // no extensions at all
  uint16_t ext_total;
  if (!r.U16(&ext_total) || ext_total != r.remaining()) {
    return Result(ClientHelloStatus::kMalformed, "extensions length mismatch");
  }
  std::vector<uint16_t> seen;
  ClientHelloResult result = Result(ClientHelloStatus::kOk);
  while (r.remaining() > 0) {
    uint16_t type, len;
    std::span<const uint8_t> ext;
    if (!r.U16(&type) || !r.U16(&len) || !r.Bytes(len, &ext)) {
      return Result(ClientHelloStatus::kMalformed, "truncated extension");
    }
    seen.push_back(type);
    if (type == kExtServerName) {
      result = ParseServerName(ext);
      if (result.status != ClientHelloStatus::kOk) return result;
    }
  }
  std::sort(seen.begin(), seen.end());
  if (std::adjacent_find(seen.begin(), seen.end()) != seen.end()) {
    return Result(ClientHelloStatus::kMalformed, "duplicate extension");
  }
  return result;
}

}  // namespace

bool IsValidSniHostName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  size_t label = 0;
  for (char ch : name) {
    auto c = static_cast<uint8_t>(ch);
    if (c == '.') {
      if (label == 0) return false;  // leading dot or empty label
      label = 0;
      continue;
    }
    if (!IsHostChar(c) || ++label > 63) return false;
  }
  return label != 0;  // no trailing dot
}

ClientHelloResult ParseClientHello(std::span<const uint8_t> data) {
  if (data.empty()) return Result(ClientHelloStatus::kNeedMore);
  if (data[0] != kContentTypeHandshake) return Result(ClientHelloStatus::kNotTls);
  // Record version: SSL 3.0 .. TLS 1.3 (0x0300..0x0304); clients put 0x0301 here.
  if (data.size() >= 2 && data[1] != 0x03) return Result(ClientHelloStatus::kNotTls);
  if (data.size() >= 3 && data[2] > 0x04) return Result(ClientHelloStatus::kNotTls);

  // Reassemble the handshake message from consecutive handshake records. Only
  // as many bytes as the announced message needs are copied.
  std::vector<uint8_t> msg;
  size_t pos = 0;
  size_t needed = 4;  // handshake header first, then header + body
  while (msg.size() < needed) {
    if (data.size() - pos < kRecordHeaderSize) {
      // A partial record header: check what is there, then ask for more.
      if (pos < data.size() && data[pos] != kContentTypeHandshake) {
        return Result(ClientHelloStatus::kMalformed, "non-handshake record inside ClientHello");
      }
      return Result(ClientHelloStatus::kNeedMore);
    }
    const uint8_t* h = data.data() + pos;
    if (h[0] != kContentTypeHandshake) {
      return Result(ClientHelloStatus::kMalformed, "non-handshake record inside ClientHello");
    }
    if (h[1] != 0x03 || h[2] > 0x04) {
      if (pos == 0) return Result(ClientHelloStatus::kNotTls);
      return Result(ClientHelloStatus::kMalformed, "bad record version");
    }
    size_t record_len = (size_t{h[3]} << 8) | h[4];
    if (record_len == 0) return Result(ClientHelloStatus::kMalformed, "empty handshake record");
    if (record_len > kMaxRecordPayload) {
      return Result(ClientHelloStatus::kMalformed, "record too long");
    }
    pos += kRecordHeaderSize;
    size_t avail = std::min(record_len, data.size() - pos);
    size_t take = std::min(avail, needed - msg.size());
    msg.insert(msg.end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
               data.begin() + static_cast<std::ptrdiff_t>(pos + take));
    if (needed == 4 && msg.size() >= 4) {
      if (msg[0] != kHandshakeClientHello) {
        return Result(ClientHelloStatus::kMalformed, "first handshake message is not ClientHello");
      }
      size_t body_len = (size_t{msg[1]} << 16) | (size_t{msg[2]} << 8) | msg[3];
      if (body_len > kMaxClientHelloSize) {
        return Result(ClientHelloStatus::kMalformed, "ClientHello too large");
      }
      if (body_len == 0) return Result(ClientHelloStatus::kMalformed, "empty ClientHello");
      needed = 4 + body_len;
      // The rest of this record may hold more of the message.
      size_t more = std::min(avail - take, needed - msg.size());
      msg.insert(msg.end(), data.begin() + static_cast<std::ptrdiff_t>(pos + take),
                 data.begin() + static_cast<std::ptrdiff_t>(pos + take + more));
      take += more;
    }
    if (avail < record_len) {
      // The record is cut short by the end of data.
      if (msg.size() >= needed) break;
      return Result(ClientHelloStatus::kNeedMore);
    }
    pos += record_len;
  }
  return ParseHelloBody(std::span<const uint8_t>(msg).subspan(4, needed - 4));
}

}  // namespace egressd::protocol
