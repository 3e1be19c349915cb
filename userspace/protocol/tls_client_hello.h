// Reads the SNI from the first bytes of a TLS connection, without decrypting
// anything. The ClientHello may span several TLS records; they are
// reassembled (bounded by the caller's 16 KiB peek).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace egressd::protocol {

enum class ClientHelloStatus { kNeedMore, kNotTls, kMalformed, kOk };

struct ClientHelloResult {
  ClientHelloStatus status = ClientHelloStatus::kNeedMore;
  std::optional<std::string> sni;  // lowercased host name; nullopt = no SNI extension
  std::string error;               // for kMalformed
};

ClientHelloResult ParseClientHello(std::span<const uint8_t> data);

}  // namespace egressd::protocol
