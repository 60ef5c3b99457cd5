#include "agent/agent_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/roles.h"

namespace devmem::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kMinimal[] =
    "listen: \"0.0.0.0:7443\"\n"
    "tls { ca_file: \"/etc/ca.pem\" cert_file: \"/etc/a.pem\" "
    "key_file: \"/etc/a.key\" }\n";

TEST(AgentConfigTest, DefaultsAreFilledIn) {
  auto c = ParseAgentConfig(kMinimal, "a.textproto");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->devmemd_socket(), "/run/devmemd/grpc.sock");
  EXPECT_EQ(c->handshake_timeout_ms(), 10000U);
  EXPECT_EQ(c->max_connections(), 1024U);
  EXPECT_EQ(c->max_streams(), 256U);
  EXPECT_EQ(c->stall_timeout_s(), 30U);
  EXPECT_EQ(c->max_request_bytes(), 65536U);
  EXPECT_EQ(c->metrics_listen(), "") << "off unless configured";
}

TEST(AgentConfigTest, ListenPortZeroTakesAFreePort) {
  auto hp = ParseListen("127.0.0.1:0");
  ASSERT_TRUE(hp.ok()) << hp.status();
  EXPECT_EQ(hp->ip, "127.0.0.1");
  EXPECT_EQ(hp->port, 0);
  EXPECT_EQ(ParseListen("[::1]:7443")->port, 7443);
  EXPECT_FALSE(ParseListen(":0").ok());
  EXPECT_FALSE(ParseListen("agent:0").ok());
}

TEST(AgentConfigTest, ErrorsNameTheFieldAndWhatToDo) {
  struct Case {
    std::string text;
    std::string message;
  };
  const Case cases[] = {
      {"tls { ca_file: \"x\" }", "a.textproto: field listen is required"},
      {"listen: \"agent.example:7443\"",
       "field listen = \"agent.example:7443\" is not a numeric IP:PORT"},
      {"listen: \"0.0.0.0:7443\"", "field tls.ca_file is required"},
      {absl::StrCat(kMinimal, "metrics_listen: \"0.0.0.0:9465\""),
       "metrics_listen"},
      {absl::StrCat(kMinimal, "devmemd_socket: \"run/grpc.sock\""),
       "must be an absolute path"},
      {absl::StrCat(kMinimal, "max_streams: 100000"),
       "field max_streams = 100000 is out of range; use 1..65536"},
      {absl::StrCat(kMinimal, "launchers: \"a\"\noperators: \"a\""),
       "field operators[0] = \"a\" is listed twice"},
      {absl::StrCat(kMinimal, "observers: \"\""), "1..256 bytes"},
      {absl::StrCat(kMinimal, "no_such_field: 1"), "a.textproto:3:"},
  };
  for (const Case& c : cases) {
    auto got = ParseAgentConfig(c.text, "a.textproto");
    ASSERT_FALSE(got.ok()) << c.text;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(got.status().message(), HasSubstr(c.message)) << c.text;
  }
}

TEST(RolesTest, EachRoleIncludesTheOnesBelow) {
  auto c = ParseAgentConfig(
      absl::StrCat(kMinimal,
                   "observers: \"mon\"\nlaunchers: \"spiffe://l\"\n"
                   "operators: \"ops\"\n"),
      "a.textproto");
  ASSERT_TRUE(c.ok()) << c.status();
  RoleTable roles(*c);
  for (FleetMethod m : kAllFleetMethods) {
    const Role need = MinimumRole(m);
    EXPECT_EQ(roles.Check("mon", m).ok(), need == Role::kObserver)
        << FleetMethodName(m);
    EXPECT_EQ(roles.Check("spiffe://l", m).ok(), need != Role::kOperator)
        << FleetMethodName(m);
    EXPECT_TRUE(roles.Check("ops", m).ok()) << FleetMethodName(m);
    EXPECT_EQ(roles.Check("stranger", m).code(),
              absl::StatusCode::kPermissionDenied);
  }
  EXPECT_EQ(roles.Check("mon", FleetMethod::kReserve).message(),
            "Reserve needs the launcher role; identity \"mon\" is observer");
  EXPECT_THAT(roles.Check("stranger", FleetMethod::kGetHost).message(),
              HasSubstr("identity \"stranger\" has no role on this agent"));
}

}  // namespace
}  // namespace devmem::agent
