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
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/nic/nic_profile.h"
#include "kernel/errno_status.h"
#include "kernel/kernel_nic_control.h"
#include "kernel/kernel_nic_inventory.h"
#include "kernel/testing/netns_veth.h"

namespace devmem {
namespace {

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

}  // namespace
}  // namespace devmem
