#include "userspace/proxy/access_log.h"

#include <gtest/gtest.h>

#include "userspace/common/status.h"

namespace egressd::proxy {
namespace {

TEST(AccessTally, AnAllowOrARefusalFillsInOnlyWhatNothingDecided) {
  AccessTally t;
  EXPECT_EQ(t.decision(), AccessDecision::kUndecided);
  t.Allowed();
  t.Refused();  // a timeout after the upstream was reached
  t.Failed();
  EXPECT_EQ(t.decision(), AccessDecision::kAllowed);
}

TEST(AccessTally, ADenyWinsAndAuditModeNeverHidesIt) {
  AccessTally t;
  t.Allowed();
  t.LetThrough();  // audit mode: the policy would have denied
  EXPECT_EQ(t.decision(), AccessDecision::kAudit);
  t.Denied();  // an open tunnel closed: the host is denied now
  t.LetThrough();
  t.Allowed();
  EXPECT_EQ(t.decision(), AccessDecision::kDenied);
}

TEST(AccessTally, CountsBytesAndRestartsForTheNextRequest) {
  AccessTally t;
  t.BytesUp(78);
  t.BytesDown(100);
  t.BytesDown(84);
  t.Denied();
  EXPECT_EQ(t.bytes_up(), 78u);
  EXPECT_EQ(t.bytes_down(), 184u);
  EXPECT_GE(t.elapsed().count(), 0);
  t.Restart();
  EXPECT_EQ(t.bytes_up(), 0u);
  EXPECT_EQ(t.bytes_down(), 0u);
  EXPECT_EQ(t.decision(), AccessDecision::kUndecided);
}

TEST(Status, ToStringIsTheMessageWithoutASourcePath) {
  Status st = EGRESSD_ERROR("cannot open {}", "/etc/x");
  EXPECT_EQ(st.ToString(), "cannot open /etc/x");
  EXPECT_NE(st.where().find(".cc:"), std::string::npos);  // kept for tests and debugging
}

}  // namespace
}  // namespace egressd::proxy
