#include "client/host_port.h"

#include "gtest/gtest.h"

namespace devmem {
namespace {

TEST(HostPortTest, ParsesIpv4AndIpv6) {
  absl::StatusOr<HostPort> v4 = ParseHostPort("10.0.0.1:5201");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->ip, "10.0.0.1");
  EXPECT_EQ(v4->port, 5201);

  absl::StatusOr<HostPort> v6 = ParseHostPort("[fd00::1]:80");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->ip, "fd00::1");
  EXPECT_EQ(v6->port, 80);
}

TEST(HostPortTest, PortOptional) {
  EXPECT_EQ(ParseHostPort("127.0.0.1", /*port_optional=*/true)->port, 0);
  EXPECT_EQ(ParseHostPort("::1", /*port_optional=*/true)->ip, "::1");
  EXPECT_EQ(ParseHostPort("[::1]", /*port_optional=*/true)->ip, "::1");
  EXPECT_EQ(ParseHostPort("[::1]:9", /*port_optional=*/true)->port, 9);
}

TEST(HostPortTest, Rejects) {
  for (const char* bad :
       {"10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:x",
        "localhost:80", ":80", "[::1", "[::1]80", "::1", "[]:80"}) {
    EXPECT_EQ(ParseHostPort(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(HostPortTest, Formats) {
  EXPECT_EQ(FormatHostPort("10.0.0.1", 80), "10.0.0.1:80");
  EXPECT_EQ(FormatHostPort("fd00::1", 80), "[fd00::1]:80");
  EXPECT_EQ(FormatHostPort("", 80), "*:80");
}

}  // namespace
}  // namespace devmem
