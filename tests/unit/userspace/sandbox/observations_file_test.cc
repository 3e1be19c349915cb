#include "userspace/sandbox/observations_file.h"

#include <gtest/gtest.h>

namespace egressd::sandbox {
namespace {

std::string ErrorOf(std::string_view text) {
  auto r = ParseObservationsFile(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.status().message();
}

TEST(ObservationsFileTest, ReadsBackWhatItWrites) {
  std::string error;
  SavedObservations finished{
      "sb-1",
      true,
      "web",
      {*policy::ParseCidr("10.0.0.0/8", &error), *policy::ParseCidr("fd00::/8", &error)},
      {{"example.com", "10.1.2.3"}, {"[::1]:5432"}, {"udp 1.2.3.4:53"}, 7}};
  SavedObservations live{"sb-2", false, "audit", {}, {}};
  std::vector<SavedObservations> entries{finished, live};
  auto again = ParseObservationsFile(ObservationsFileText(entries));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(*again, entries);
}

TEST(ObservationsFileTest, MappedBlocksReadAsIpv4) {
  auto r = ParseObservationsFile(
      R"({"version":1,"instances":[{"instance":"i","finished":true,"policy_name":"p",)"
      R"("deny_cidrs":["::ffff:10.0.0.0/104"],)"
      R"("observed":{"hosts":[],"tcp":[],"other":[],"dropped":0}}]})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)[0].deny_cidrs[0].ToString(), "10.0.0.0/8");
}

TEST(ObservationsFileTest, RefusesWithTheFieldNamed) {
  const std::string head = R"({"version":1,"instances":[{"instance":"i","finished":true,)";
  EXPECT_EQ(ErrorOf("{"), "not JSON");
  EXPECT_EQ(ErrorOf("1"), "not a JSON object");
  EXPECT_EQ(ErrorOf(R"({"instances":null})"), "instances: must be a list");
  EXPECT_EQ(ErrorOf(R"({"instances":["x"]})"), "instances[0]: must be an object");
  EXPECT_EQ(ErrorOf(head + R"("deny_cidrs":[],"observed":{}}]})"),
            "instances[0].policy_name: missing");
  EXPECT_EQ(
      ErrorOf(head + R"("policy_name":"p","deny_cidrs":["10.0.0.1/8"],"observed":{}}]})"),
      "instances[0].deny_cidrs[0]: \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?");
  EXPECT_EQ(ErrorOf(head + R"("policy_name":"p","deny_cidrs":[],"observed":{"hosts":[1]}}]})"),
            "instances[0].observed.hosts: must be a list of strings");
  EXPECT_EQ(ErrorOf(head + R"("policy_name":"p","deny_cidrs":[],)"
                           R"("observed":{"hosts":[],"tcp":[],"other":[],"dropped":-1}}]})"),
            "instances[0].observed.dropped: must be an integer from 0 to 18446744073709551615");
}

}  // namespace
}  // namespace egressd::sandbox
