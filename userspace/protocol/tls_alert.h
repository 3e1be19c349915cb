// The TLS alert egressd sends a client whose ClientHello it refuses, before
// any handshake: a plaintext alert record (RFC 8446 6, RFC 5246 7.2), which
// clients report by name ("tlsv1 alert access denied").
#pragma once

#include <cstdint>
#include <string>

namespace egressd::protocol {

inline constexpr uint8_t kTlsAlertAccessDenied = 49;

// One record: content type 21 (alert), version 0x0303, length 2, level 2
// (fatal), `description`.
std::string TlsFatalAlertRecord(uint8_t description);

}  // namespace egressd::protocol
