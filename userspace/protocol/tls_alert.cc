#include "userspace/protocol/tls_alert.h"

namespace egressd::protocol {

std::string TlsFatalAlertRecord(uint8_t description) {
  constexpr char kAlert = 21, kFatal = 2;
  return std::string{kAlert, 0x03, 0x03, 0x00, 0x02, kFatal, static_cast<char>(description)};
}

}  // namespace egressd::protocol
