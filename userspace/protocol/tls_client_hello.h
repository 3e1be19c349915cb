// TLS ClientHello parser: extracts the server_name (SNI) a client asks for.
//
// Parses untrusted bytes from a sandbox; never throws, never reads out of
// bounds, and copies at most one handshake message (bounded by
// kMaxClientHelloSize).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace egressd::protocol {

enum class ClientHelloStatus { kNeedMore, kNotTls, kMalformed, kOk };

struct ClientHelloResult {
  ClientHelloStatus status;
  std::optional<std::string> sni;
  std::string error;
};

// Largest ClientHello handshake message body accepted (the caller stops
// reading at 16 KiB anyway; anything announcing more is rejected outright).
inline constexpr size_t kMaxClientHelloSize = 64 * 1024;

// data = the first bytes the client sent (up to 16 KiB). A ClientHello may
// span several TLS records (handshake message fragmented across records): they
// are reassembled. kNotTls when the first byte is not 0x16 or the record
// version is implausible; kNeedMore when more bytes are needed (the caller
// stops at 16 KiB); kOk with sni = the server_name host_name (one trailing
// dot stripped, then validated: 1..255 bytes, DNS characters only,
// lowercased; otherwise kMalformed) or
// nullopt when there is no SNI extension. Multiple SNI host names, duplicate
// extensions -> kMalformed.
ClientHelloResult ParseClientHello(std::span<const uint8_t> data);

// True if `name` is a DNS host name as accepted in SNI: 1..255 bytes, labels
// of 1..63 characters from [A-Za-z0-9-_], separated by single dots, no leading
// or trailing dot. Case is not changed.
bool IsValidSniHostName(std::string_view name);

}  // namespace egressd::protocol
