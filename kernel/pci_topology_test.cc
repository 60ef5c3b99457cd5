#include "kernel/pci_topology.h"

#include "kernel/sysfs_util.h"
#include "kernel/testing/fake_pci.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint32_t kGpu = 0x030200;
constexpr uint32_t kNic = 0x020000;

// An 8-GPU server: 2 sockets, 2 host bridges each, one PCIe switch under
// each host bridge with 2 GPUs and 2 NICs behind its downstream ports.
void AddEightGpuServer(FakePci& pci) {
  const char* bridges[] = {"10", "30", "90", "b0"};
  for (int sw = 0; sw < 4; ++sw) {
    const std::string b = bridges[sw];
    const std::string hb = absl::StrCat("pci0000:", b);
    const std::string rp = absl::StrCat("0000:", b, ":01.0");
    const int base = std::stoi(b, nullptr, 16);
    const std::string up =
        absl::StrCat("0000:", absl::Hex(base + 1, absl::kZeroPad2), ":00.0");
    const int numa = sw < 2 ? 0 : 1;
    for (int port = 0; port < 4; ++port) {
      const std::string down = absl::StrCat(
          "0000:", absl::Hex(base + 2, absl::kZeroPad2), ":0", port, ".0");
      const std::string dev = absl::StrCat(
          "0000:", absl::Hex(base + 3 + port, absl::kZeroPad2), ":00.0");
      const bool gpu = port < 2;
      pci.Add({hb, rp, up, down, dev}, gpu ? kGpu : kNic, numa,
              gpu ? "nvidia" : "mlx5_core");
    }
  }
}

// The device at switch `sw` (0..3), port `port` (0, 1: GPUs; 2, 3: NICs).
std::string Addr(int sw, int port) {
  const int base = std::stoi(std::string(1, "139b"[sw]) + "0", nullptr, 16);
  return absl::StrCat("0000:", absl::Hex(base + 3 + port, absl::kZeroPad2),
                      ":00.0");
}

TEST(PciTopologyTest, EightGpuServerGpusAndDistances) {
  FakePci pci;
  AddEightGpuServer(pci);
  PciTopology topo(pci.root());
  auto gpus = topo.Accelerators();
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 8u);
  EXPECT_EQ((*gpus)[0].address, Addr(0, 0));
  EXPECT_EQ((*gpus)[0].vendor, 0x10de);
  EXPECT_EQ((*gpus)[0].driver, "nvidia");
  EXPECT_EQ((*gpus)[0].numa_node, 0);
  EXPECT_THAT((*gpus)[0].path,
              ElementsAre("pci0000:10", "0000:10:01.0", "0000:11:00.0",
                          "0000:12:00.0", "0000:13:00.0"));
  EXPECT_EQ((*gpus)[7].numa_node, 1);

  auto dist = [&](int gsw, int gport, int nsw, int nport) {
    auto g = topo.Device(Addr(gsw, gport));
    auto n = topo.Device(Addr(nsw, nport));
    EXPECT_TRUE(g.ok() && n.ok());
    return std::string(PciDistanceName(Distance(*g, *n)));
  };
  EXPECT_EQ(dist(0, 0, 0, 2), "PIX");  // same switch
  EXPECT_EQ(dist(0, 1, 0, 3), "PIX");
  EXPECT_EQ(dist(0, 0, 1, 2), "NODE");  // other host bridge, same socket
  EXPECT_EQ(dist(0, 0, 2, 2), "SYS");   // other socket
  EXPECT_EQ(dist(3, 1, 3, 3), "PIX");
  EXPECT_EQ(dist(2, 0, 3, 2), "NODE");
  EXPECT_EQ(dist(3, 0, 0, 3), "SYS");
}

TEST(PciTopologyTest, PxbAndPhb) {
  FakePci pci;
  // A GPU behind two cascaded switches, a NIC behind the first only.
  pci.Add({"pci0000:40", "0000:40:01.0", "0000:41:00.0", "0000:42:00.0",
           "0000:43:00.0", "0000:44:00.0", "0000:45:00.0"},
          kGpu, 0);
  pci.Add({"pci0000:40", "0000:40:01.0", "0000:41:00.0", "0000:42:01.0",
           "0000:46:00.0"},
          kNic, 0);
  // Another root port of the same host bridge.
  pci.Add({"pci0000:40", "0000:40:02.0", "0000:47:00.0"}, kNic, 0);
  PciTopology topo(pci.root());
  auto gpu = topo.Device("0000:45:00.0");
  auto nic1 = topo.Device("0000:46:00.0");
  auto nic2 = topo.Device("0000:47:00.0");
  ASSERT_TRUE(gpu.ok() && nic1.ok() && nic2.ok());
  EXPECT_EQ(Distance(*gpu, *nic1), PciDistance::kPxb);
  EXPECT_EQ(Distance(*nic1, *gpu), PciDistance::kPxb);
  EXPECT_EQ(Distance(*gpu, *nic2), PciDistance::kPhb);
  // Two functions of one device.
  pci.Add({"pci0000:40", "0000:40:02.0", "0000:47:00.1"}, kNic, 0);
  auto fn1 = topo.Device("0000:47:00.1");
  ASSERT_TRUE(fn1.ok());
  EXPECT_EQ(Distance(*nic2, *fn1), PciDistance::kPix);
  // Unknown NUMA nodes on different host bridges: one node.
  PciDevice a{"x", 0, 0, 0, "", -1, {"pci0000:00", "0000:00:01.0"}};
  PciDevice b{"y", 0, 0, 0, "", -1, {"pci0000:80", "0000:80:01.0"}};
  EXPECT_EQ(Distance(a, b), PciDistance::kNode);
}

TEST(PciTopologyTest, BadAddressesAndMissingDevices) {
  FakePci pci;
  PciTopology topo(pci.root());
  EXPECT_EQ(topo.Device("3b:00.0").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(topo.Device("0000:3B:00.0").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(topo.Device("../../../etc").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(topo.Device("0000:3b:00.0").status().code(),
            absl::StatusCode::kNotFound);
  auto none = topo.Accelerators();
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
  auto no_bus = PciTopology(pci.root() + "/nonexistent").Accelerators();
  ASSERT_TRUE(no_bus.ok());
  EXPECT_THAT(*no_bus, IsEmpty());
}

// This machine's real sysfs: whatever it has, listing works; the CI machines
// have no GPU.
TEST(PciTopologyTest, RealSysfsListsWithoutError) {
  auto gpus = PciTopology().Accelerators();
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  for (const PciDevice& g : *gpus) {
    EXPECT_TRUE(IsPciAddress(g.address)) << g.address;
    EXPECT_TRUE(IsAccelerator(g.pci_class));
    ASSERT_FALSE(g.path.empty());
    EXPECT_EQ(g.path.back(), g.address);
  }
  std::printf("real sysfs: %zu GPU(s)/accelerator(s)\n", gpus->size());
}

}  // namespace
}  // namespace devmem
