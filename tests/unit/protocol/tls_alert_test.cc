#include "userspace/protocol/tls_alert.h"

#include <gtest/gtest.h>

namespace egressd::protocol {
namespace {

TEST(TlsAlert, AccessDeniedIsOneFatalPlaintextRecord) {
  const std::string record = TlsFatalAlertRecord(kTlsAlertAccessDenied);
  const std::string expected{21, 3, 3, 0, 2, 2, 49};
  EXPECT_EQ(record, expected);
}

}  // namespace
}  // namespace egressd::protocol
