// The daemon's NIC logic on the real kernel backend, on a veth pair in a
// private network namespace: veth has no header split, ntuple or RSS, and no
// queue-management ops, so everything devmem needs is refused. Checks that the
// refusals come back with the kernel's own errno, that a profile leaves the
// NIC untouched (ethtool(8) as witness), and that the daemon maps a real
// bind-rx refusal to FAILED_PRECONDITION with a remedy. Needs root.
#include <net/if.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/nic/nic_profile.h"
#include "kernel/errno_status.h"
#include "kernel/kernel_nic_control.h"
#include "kernel/kernel_nic_inventory.h"
#include "kernel/testing/kernel_version.h"
#include "kernel/testing/netns_veth.h"
#include "kernel/udmabuf.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::ScopedNetns;
using testing::ScopedVethPair;

class KernelRefusalVethTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    auto ns = ScopedNetns::Enter();
    if (!ns.ok()) GTEST_SKIP() << "cannot create a netns: " << ns.status();
    ns_ = std::move(*ns);
    auto veth = ScopedVethPair::Create("krv0", "krv1");
    ASSERT_TRUE(veth.ok()) << veth.status();
    veth_ = std::move(*veth);
    auto control = KernelNicControl::Create();
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = std::move(*control);
    auto inventory = KernelNicInventory::Create();
    ASSERT_TRUE(inventory.ok()) << inventory.status();
    inventory_ = std::move(*inventory);
    ifindex_ = if_nametoindex("krv0");
    ASSERT_NE(ifindex_, 0u);
  }
  void TearDown() override {
    control_.reset();
    inventory_.reset();
    veth_.reset();
    ns_.reset();
  }

  std::string Witness() {
    std::string out;
    for (const char* flag : {"-l", "-k"}) {
      auto r = RunCommand({"ethtool", flag, "krv0"});
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) out += r->output;
    }
    return out;
  }

  std::unique_ptr<ScopedNetns> ns_;
  std::unique_ptr<ScopedVethPair> veth_;
  std::unique_ptr<NicControl> control_;
  std::unique_ptr<NicInventory> inventory_;
  uint32_t ifindex_ = 0;
};

TEST_F(KernelRefusalVethTest, ProbeNamesEachMissingCapabilityWithKernelErrno) {
  const std::vector<Capability> missing = ProbeDevmem(*control_, ifindex_);
  auto find = [&](const std::string& name) -> const Capability* {
    for (const Capability& c : missing) {
      if (c.name == name) return &c;
    }
    return nullptr;
  };
  ASSERT_NE(find("tcp_data_split"), nullptr);
  EXPECT_EQ(find("tcp_data_split")->error, EOPNOTSUPP);
  ASSERT_NE(find("rss"), nullptr);
  EXPECT_EQ(find("rss")->error, EOPNOTSUPP);
  ASSERT_NE(find("ntuple_rules"), nullptr);
  EXPECT_EQ(find("ntuple_rules")->error, EOPNOTSUPP);
  ASSERT_NE(find("ntuple"), nullptr);
}

TEST_F(KernelRefusalVethTest, ProfileLeavesTheNicUntouched) {
  devmem::v1::DaemonConfig config;
  config.set_state_dir(absl::StrCat(std::getenv("TEST_TMPDIR"), "/krv"));
  config.add_nic_profiles()->set_nic("krv0");
  ASSERT_TRUE(FinalizeConfig(&config, "test").ok());
  NicManager::Options o;
  o.config = &config;
  o.control = control_.get();
  o.inventory = inventory_.get();
  NicManager m(o);
  const std::string before = Witness();
  m.ApplyAll();
  auto states = m.States({"krv0"});
  ASSERT_TRUE(states.ok()) << states.status();
  EXPECT_EQ((*states)[0].state(), devmem::v1::PROFILE_STATE_NOT_CAPABLE);
  EXPECT_TRUE((*states)[0].record_path().empty());
  EXPECT_EQ(Witness(), before);
  // A memfd is refused before any netlink, with INVALID_ARGUMENT.
  UniqueFd mem(memfd_create("not-dmabuf", MFD_CLOEXEC));
  auto b = m.BindRx(1, {"krv0", ""}, 1, std::move(mem));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("not a dma-buf"), std::string::npos)
      << b.status();
  m.RestoreAll();
  EXPECT_EQ(Witness(), before);
}

TEST_F(KernelRefusalVethTest, RealBindRxRefusalMapsToFailedPrecondition) {
  UniqueFd mem(memfd_create("not-dmabuf", MFD_CLOEXEC));
  const std::vector<uint32_t> queues = {0};
  auto bound = control_->BindRx(ifindex_, mem.get_unowned(), queues);
  ASSERT_FALSE(bound.ok());
  if (!testing::KernelAtLeast(6, 15)) {
    // 6.12-6.14 look at the fd first: the memfd is no dma-buf (EINVAL). The
    // daemon refuses a memfd before any netlink (above), so the device's
    // own refusal is only reached with a real dma-buf (udmabuf_test).
    EXPECT_EQ(StatusErrno(bound.status()), EINVAL) << bound.status();
    return;
  }
  // 6.18 refuses a driver without queue-management ops up front.
  ASSERT_EQ(StatusErrno(bound.status()), EOPNOTSUPP) << bound.status();
  const absl::Status mapped =
      KernelRefusal(bound.status(), BindRxRemedy(bound.status(), "krv0"));
  EXPECT_EQ(mapped.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(mapped.message().find("Operation not supported"), std::string::npos)
      << mapped;
  EXPECT_NE(mapped.message().find("queue-management"), std::string::npos)
      << mapped;
}

// A real dma-buf (a udmabuf: the kernel matrix's guests have /dev/udmabuf;
// this machine does not) gets past the kernel's fd checks to the device's.
absl::StatusOr<UniqueFd> RealDmabufOrSkipReason() {
  if (access(kUdmabufDevice, F_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no ", kUdmabufDevice, " here (the kernel matrix's guests have one)"));
  }
  return CreateUdmabuf(2 << 20);
}

TEST_F(KernelRefusalVethTest, RealDmabufOnVethIsFailedPrecondition) {
  absl::StatusOr<UniqueFd> dmabuf = RealDmabufOrSkipReason();
  if (!dmabuf.ok()) GTEST_SKIP() << dmabuf.status();
  const std::vector<uint32_t> queues = {0};
  auto bound = control_->BindRx(ifindex_, dmabuf->get_unowned(), queues);
  ASSERT_FALSE(bound.ok());
  const absl::Status mapped =
      KernelRefusal(bound.status(), BindRxRemedy(bound.status(), "krv0"));
  // Whatever this kernel's words for "veth cannot bind device memory", the
  // workload is told its request was fine and the NIC is not.
  EXPECT_EQ(mapped.code(), absl::StatusCode::kFailedPrecondition) << mapped;
  EXPECT_THAT(mapped.message(), HasSubstr("bind-rx krv0"));
  if (testing::KernelAtLeast(6, 15)) {
    EXPECT_EQ(StatusErrno(bound.status()), EOPNOTSUPP) << bound.status();
    EXPECT_THAT(mapped.message(), HasSubstr("queue-management"));
  } else {
    // 6.12 attaches the dma-buf first; veth has no DMA device.
    EXPECT_EQ(StatusErrno(bound.status()), EINVAL) << bound.status();
    EXPECT_EQ(StatusExtack(bound.status()), "Failed to bind dmabuf to device");
    EXPECT_THAT(mapped.message(), HasSubstr("could not attach the dma-buf"));
  }
  std::cout << "kernel's answer: " << bound.status() << "\nmapped: " << mapped
            << "\n";
}

// netdevsim (built out of tree for the kernel matrix's guests) has, from
// 6.14, queue-management ops and header split but no DMA device: 7.x's own
// DMA check refuses it, and that text reaches the workload.
TEST(KernelRefusalNetdevsimTest, RealDmabufHitsTheDmaCheck) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
  if (access("/sys/bus/netdevsim/new_device", W_OK) != 0) {
    GTEST_SKIP() << "netdevsim is not loaded (scripts/kernel_matrix.sh loads "
                    "it in its guests)";
  }
  absl::StatusOr<UniqueFd> dmabuf = RealDmabufOrSkipReason();
  if (!dmabuf.ok()) GTEST_SKIP() << dmabuf.status();
  // netdevsim makes its ports in the writer's namespace: this one's own.
  auto ns = ScopedNetns::Enter();
  ASSERT_TRUE(ns.ok()) << ns.status();
  auto made =
      RunCommand({"sh", "-c", "echo '77 1 4' >/sys/bus/netdevsim/new_device"});
  ASSERT_TRUE(made.ok() && made->exit_code == 0)
      << (made.ok() ? made->output : made.status().ToString());
  std::string nic;
  for (int i = 0; i < 50 && nic.empty(); ++i) {
    auto links = RunCommand({"sh", "-c",
                             "ip -o link show | awk -F': ' '$2 != \"lo\" "
                             "{print $2; exit}'"});
    if (links.ok()) {
      nic = std::string(absl::StripAsciiWhitespace(links->output));
    }
    if (nic.empty()) usleep(100 * 1000);
  }
  const uint32_t ifindex = nic.empty() ? 0 : if_nametoindex(nic.c_str());
  absl::StatusOr<std::unique_ptr<KernelNicControl>> control =
      KernelNicControl::Create();
  absl::StatusOr<std::unique_ptr<DevmemBinding>> bound =
      absl::FailedPreconditionError("not tried");
  if (ifindex != 0 && control.ok()) {
    const std::vector<uint32_t> queues = {3};
    bound = (*control)->BindRx(ifindex, dmabuf->get_unowned(), queues);
  }
  (void)RunCommand({"sh", "-c", "echo 77 >/sys/bus/netdevsim/del_device"});
  ASSERT_NE(ifindex, 0u) << "no netdevsim port appeared";
  ASSERT_TRUE(control.ok()) << control.status();
  ASSERT_FALSE(bound.ok());
  EXPECT_EQ(StatusErrno(bound.status()), EOPNOTSUPP) << bound.status();
  const absl::Status mapped =
      KernelRefusal(bound.status(), BindRxRemedy(bound.status(), nic));
  EXPECT_EQ(mapped.code(), absl::StatusCode::kFailedPrecondition);
  if (!testing::KernelAtLeast(6, 14)) {
    // netdevsim's queue-management ops came in 6.14: before, the queue
    // restart after the attach refuses it, with no text (the 6.12 guest).
    EXPECT_EQ(StatusExtack(bound.status()), "");
    EXPECT_THAT(mapped.message(), HasSubstr("queue-management"));
  } else if (testing::KernelAtLeast(7, 0)) {
    EXPECT_EQ(StatusExtack(bound.status()), "Device doesn't support DMA");
    EXPECT_THAT(mapped.message(), HasSubstr("Device doesn't support DMA"));
    EXPECT_THAT(mapped.message(), HasSubstr("no DMA device"));
    EXPECT_THAT(mapped.message(), Not(HasSubstr("queue-management")));
  }
  std::cout << "mapped: " << mapped << "\n";
}

}  // namespace
}  // namespace devmem
