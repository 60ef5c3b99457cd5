#include "daemon/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

TEST(ConfigTest, DefaultsFilled) {
  auto c =
      ParseConfig("allow_uids: 1000\nallow_gids: [10, 20]\n", "t.textproto");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->runtime_dir(), "/run/devmemd");
  EXPECT_EQ(c->ticket_ttl_ms(), 10000u);
  EXPECT_EQ(c->max_tickets_per_session(), 1024u);
  EXPECT_EQ(c->max_rules_per_session(), 4096u);
  EXPECT_EQ(c->max_rules_per_uid(), 16384u);
  EXPECT_EQ(c->allow_gids_size(), 2);
}

TEST(ConfigTest, UnknownFieldNamesFileLineAndField) {
  auto c =
      ParseConfig("ticket_ttl_ms: 500\n  allow_uid: 3\n", "/etc/d.textproto");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("/etc/d.textproto:2:"));
  EXPECT_THAT(c.status().message(), HasSubstr("allow_uid"));
}

TEST(ConfigTest, BadValueNamesLine) {
  auto c = ParseConfig("\n\nallow_uids: -4\n", "x.textproto");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("x.textproto:3:"));
}

TEST(ConfigTest, RangeChecked) {
  auto c = ParseConfig("ticket_ttl_ms: 5", "x.textproto");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("ticket_ttl_ms"));
  EXPECT_THAT(c.status().message(), HasSubstr("out of range"));
}

TEST(ConfigTest, RelativeRuntimeDirRejected) {
  auto c = ParseConfig("runtime_dir: \"run\"", "x.textproto");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("absolute"));
}

TEST(ConfigTest, MetricsListenMustBeLoopback) {
  auto c = ParseConfig("metrics_listen: \"0.0.0.0:9464\"", "x.textproto");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr("x.textproto: field metrics_listen \"0.0.0.0:9464\""));
  EXPECT_THAT(c.status().message(), HasSubstr("not a loopback address"));
  c = ParseConfig("metrics_listen: \"127.0.0.1:9464\"", "x.textproto");
  ASSERT_TRUE(c.ok()) << c.status();
  c = ParseConfig("", "x.textproto");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics_listen(), "") << "off unless configured";
}

TEST(ConfigTest, UnknownGroupRejected) {
  auto c =
      ParseConfig("socket_group: \"no-such-group-devmemd\"", "x.textproto");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("no such group"));
}

TEST(ConfigTest, AdminUsersBecomeAdminAndAllowedUids) {
  // "nobody" (65534) exists on every Debian system.
  auto c = ParseConfig("admin_users: \"nobody\"\nadmin_uids: 65534\n",
                       "x.textproto");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->admin_uids_size(), 1) << "listed once";
  EXPECT_EQ(c->admin_uids(0), 65534U);
  ASSERT_EQ(c->allow_uids_size(), 1);
  EXPECT_EQ(c->allow_uids(0), 65534U);
  auto bad =
      ParseConfig("admin_users: \"no-such-user-devmemd\"", "x.textproto");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(
      bad.status().message(),
      HasSubstr("admin_users[0] = \"no-such-user-devmemd\": no such user"));
}

TEST(ConfigTest, UnitAndSliceRulesAreCheckedAndNamed) {
  auto ok = ParseConfig(
      "allow_units: [\"train.service\", \"job-7.scope\"]\n"
      "allow_slices: \"batch.slice\"\n",
      "x.textproto");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->allow_units_size(), 2);
  auto unit = ParseConfig("allow_units: [\"train.service\", \"batch.slice\"]",
                          "x.textproto");
  ASSERT_FALSE(unit.ok());
  EXPECT_EQ(unit.status().message(),
            "x.textproto: field allow_units[1] = \"batch.slice\" is a slice; "
            "list it in allow_slices");
  auto slice = ParseConfig("allow_slices: \"batch\"", "x.textproto");
  ASSERT_FALSE(slice.ok());
  EXPECT_THAT(slice.status().message(),
              HasSubstr("field allow_slices[0] = \"batch\" is not a slice "
                        "name (it must end in \".slice\""));
}

TEST(ConfigTest, MissingFileNamesPath) {
  auto c = LoadConfigFile("/nonexistent/devmemd.textproto");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(),
              HasSubstr("/nonexistent/devmemd.textproto"));
}

}  // namespace
}  // namespace devmem

namespace devmem {
namespace {

TEST(ConfigTest, ShippedDefaultConfigParses) {
  auto c = LoadConfigFile("deploy/devmemd.textproto");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->runtime_dir(), "/run/devmemd");
  EXPECT_EQ(c->allow_uids_size(), 1);
  EXPECT_EQ(c->metrics_listen(), "127.0.0.1:9464");
}

}  // namespace
}  // namespace devmem
