#include "client/ctl/slurm_cores.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace devmem {
namespace ctl {
namespace {

void Write(const std::string& path, const std::string& text) {
  for (size_t i = 1; i < path.size(); ++i) {
    if (path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
  }
  std::ofstream(path) << text << "\n";
}

// Two packages of two cores with two hyperthreads each, Linux's usual
// numbering: CPUs 0-3 are the first thread of each core, 4-7 the second.
// NUMA node 1 is package 1: CPUs 2,3,6,7 = Slurm cores 2-3.
std::string FakeSysfs() {
  std::string root = absl::StrCat(getenv("TEST_TMPDIR"), "/sys");
  Write(root + "/devices/system/cpu/online", "0-7");
  for (int cpu = 0; cpu < 8; ++cpu) {
    const std::string topo =
        absl::StrCat(root, "/devices/system/cpu/cpu", cpu, "/topology/");
    Write(topo + "physical_package_id", absl::StrCat((cpu % 4) / 2));
    Write(topo + "core_id", absl::StrCat(cpu % 2 == 0 ? 0 : 4));
  }
  Write(root + "/devices/system/node/node0/cpulist", "0-1,4-5");
  Write(root + "/devices/system/node/node1/cpulist", "2-3,6-7");
  return root;
}

TEST(SlurmCoresOfNode, CountsCoresNotHyperthreads) {
  const std::string sysfs = FakeSysfs();
  EXPECT_EQ(SlurmCoresOfNode(sysfs, 0), "0-1");
  EXPECT_EQ(SlurmCoresOfNode(sysfs, 1), "2-3");
}

TEST(SlurmCoresOfNode, EmptyWhenSysfsDoesNotSay) {
  EXPECT_EQ(SlurmCoresOfNode(FakeSysfs(), 5), "");
  EXPECT_EQ(SlurmCoresOfNode("/nonexistent", 0), "");
}

TEST(SlurmCoresOfNode, ThisMachine) {
  // Every online CPU is in some node; node 0 exists on any Linux machine.
  EXPECT_NE(SlurmCoresOfNode("/sys", 0), "");
}

}  // namespace
}  // namespace ctl
}  // namespace devmem
