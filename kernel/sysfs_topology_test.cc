#include "kernel/sysfs_topology.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

// Builds a small fake sysfs tree under $TEST_TMPDIR, shaped like the real
// one: class/net/<if> links into devices/, device and driver are symlinks.
class FakeSysfs {
 public:
  FakeSysfs() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    static int instance = 0;  // one fresh tree per test
    root_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/sys-", getpid(), "-",
                         ++instance);
  }
  const std::string& root() const { return root_; }

  void Dir(const std::string& rel) {
    std::string path = root_;
    mkdir(path.c_str(), 0755);
    size_t pos = 0;
    while (pos != std::string::npos) {
      const size_t next = rel.find('/', pos);
      path = absl::StrCat(root_, "/", rel.substr(0, next));
      mkdir(path.c_str(), 0755);
      pos = next == std::string::npos ? next : next + 1;
    }
  }
  void File(const std::string& rel, const std::string& text) {
    std::ofstream(absl::StrCat(root_, "/", rel)) << text;
  }
  void Link(const std::string& rel, const std::string& target) {
    ASSERT_EQ(symlink(target.c_str(), absl::StrCat(root_, "/", rel).c_str()), 0)
        << rel;
  }

 private:
  std::string root_;
};

class SysfsTopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A PCI NIC on NUMA node 1 with driver mlx5_core.
    fs_.Dir("bus/pci/drivers/mlx5_core");
    fs_.Dir("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/eth1");
    fs_.File("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/numa_node", "1\n");
    fs_.Link("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/driver",
             "../../../../bus/pci/drivers/mlx5_core");
    fs_.Link("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/eth1/device",
             "../../../0000:3b:00.0");
    fs_.File("devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/eth1/ifindex",
             "4\n");
    fs_.Dir("class/net");
    fs_.Link("class/net/eth1",
             "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/eth1");

    // virtio-net: device -> .../0000:00:03.0/virtio2, NUMA on the PCI parent.
    fs_.Dir("bus/virtio/drivers/virtio_net");
    fs_.Dir("devices/pci0000:00/0000:00:03.0/virtio2/net/eth0");
    fs_.File("devices/pci0000:00/0000:00:03.0/numa_node", "0\n");
    fs_.Link("devices/pci0000:00/0000:00:03.0/virtio2/driver",
             "../../../../bus/virtio/drivers/virtio_net");
    fs_.Link("devices/pci0000:00/0000:00:03.0/virtio2/net/eth0/device",
             "../../../virtio2");
    fs_.Link("class/net/eth0",
             "../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0");

    // A platform (non-PCI) NIC with numa_node -1.
    fs_.Dir("bus/platform/drivers/macb");
    fs_.Dir("devices/platform/soc/e000b000.ethernet/net/end0");
    fs_.File("devices/platform/soc/e000b000.ethernet/numa_node", "-1\n");
    fs_.Link("devices/platform/soc/e000b000.ethernet/driver",
             "../../../../bus/platform/drivers/macb");
    fs_.Link("devices/platform/soc/e000b000.ethernet/net/end0/device",
             "../../../e000b000.ethernet");
    fs_.Link("class/net/end0",
             "../../devices/platform/soc/e000b000.ethernet/net/end0");

    // A virtual device: no device link.
    fs_.Dir("devices/virtual/net/veth0");
    fs_.Link("class/net/veth0", "../../devices/virtual/net/veth0");
  }

  FakeSysfs fs_;
};

TEST_F(SysfsTopologyTest, PciNic) {
  absl::StatusOr<DeviceTopology> t = SysfsTopology(fs_.root()).Lookup("eth1");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->driver, "mlx5_core");
  EXPECT_EQ(t->pci_address, "0000:3b:00.0");
  EXPECT_EQ(t->numa_node, 1);
  EXPECT_EQ(t->ifindex, 4u);
}

TEST_F(SysfsTopologyTest, VirtioNicUsesItsPciParent) {
  absl::StatusOr<DeviceTopology> t = SysfsTopology(fs_.root()).Lookup("eth0");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->driver, "virtio_net");
  EXPECT_EQ(t->pci_address, "0000:00:03.0");
  EXPECT_EQ(t->numa_node, 0);
  EXPECT_EQ(t->ifindex, 0u);  // no ifindex file in this fake
}

TEST_F(SysfsTopologyTest, PlatformNicHasNoPciAddress) {
  absl::StatusOr<DeviceTopology> t = SysfsTopology(fs_.root()).Lookup("end0");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->driver, "macb");
  EXPECT_EQ(t->pci_address, "");
  EXPECT_EQ(t->numa_node, -1);
}

TEST_F(SysfsTopologyTest, VirtualDeviceIsEmpty) {
  absl::StatusOr<DeviceTopology> t = SysfsTopology(fs_.root()).Lookup("veth0");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->driver, "");
  EXPECT_EQ(t->pci_address, "");
  EXPECT_EQ(t->numa_node, -1);
}

TEST_F(SysfsTopologyTest, MissingAndBadNames) {
  SysfsTopology sysfs(fs_.root());
  EXPECT_EQ(sysfs.Lookup("eth9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(sysfs.Lookup("../eth1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sysfs.Lookup("..").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sysfs.Lookup("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SysfsTopologyRealTest, LoopbackHasNoDevice) {
  absl::StatusOr<DeviceTopology> t = SysfsTopology().Lookup("lo");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->driver, "");
  EXPECT_EQ(t->pci_address, "");
  EXPECT_EQ(t->numa_node, -1);
  EXPECT_EQ(t->ifindex, 1u);
}

}  // namespace
}  // namespace devmem
