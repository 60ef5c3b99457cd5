#include "client/fleet/host_list.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace devmem::fleetctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HostListTest, ArgumentsFileAndStdinInOrder) {
  const std::string file =
      std::string(std::getenv("TEST_TMPDIR")) + "/hosts.txt";
  std::ofstream(file) << "# rack 7\ngpu-1:7443\n\n  gpu-2:7443  # spare\n";
  std::istringstream in("10.0.0.5:7443\n[fd00::5]:7443\n");
  auto hosts = ReadHostList({"gpu-0:7443", "-"}, file, &in);
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  EXPECT_THAT(*hosts, ElementsAre("gpu-1:7443", "gpu-2:7443", "gpu-0:7443",
                                  "10.0.0.5:7443", "[fd00::5]:7443"));
  EXPECT_EQ(HostName("[fd00::5]:7443"), "fd00::5");
  EXPECT_EQ(HostName("gpu-1:7443"), "gpu-1");
}

TEST(HostListTest, BadEntriesSayWhichAndWhere) {
  std::istringstream none("");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"gpu-1"}, "argument: \"gpu-1\" is not HOST:PORT"},
      {{"gpu-1:0"}, "is not HOST:PORT"},
      {{"gpu-1:99999"}, "is not HOST:PORT"},
      {{"fd00::5:7443"}, "is not HOST:PORT"},
      {{"gpu 1:7443"}, "is not HOST:PORT"},
      {{"a:1", "a:1"}, "a:1 is listed twice"},
      {{}, "no hosts"},
  };
  for (const Case& c : cases) {
    auto got = ReadHostList(c.args, "", &none);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(got.status().message(), HasSubstr(c.message));
  }
  std::istringstream bad("gpu-1:7443\nnot-a-host\n");
  auto got = ReadHostList({"-"}, "", &bad);
  EXPECT_THAT(got.status().message(), HasSubstr("stdin:2"));
  EXPECT_THAT(ReadHostList({}, "/nonexistent/hosts", &none).status().message(),
              HasSubstr("--hosts_file=/nonexistent/hosts: cannot read it"));
}

}  // namespace
}  // namespace devmem::fleetctl
