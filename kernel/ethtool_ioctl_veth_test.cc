// EthtoolIoctl against the real kernel, on a veth pair in a private network
// namespace. veth implements neither get_rxnfc/set_rxnfc nor the RSS ops
// (drivers/net/veth.c veth_ethtool_ops), so every command here is refused with
// EOPNOTSUPP, and the errno must survive in the status. ethtool(8) is run as
// an independent witness. Needs root; skips with the reason otherwise.

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/ethtool_ioctl.h"
#include "kernel/testing/netns_veth.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

constexpr char kVeth[] = "dvei0";
constexpr char kPeer[] = "dvei1";

class EthtoolIoctlVethTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create a netns + veth";
    absl::StatusOr<std::unique_ptr<testing::ScopedNetns>> ns =
        testing::ScopedNetns::Enter();
    if (!ns.ok()) GTEST_SKIP() << "cannot create a netns: " << ns.status();
    ns_ = *std::move(ns);
    absl::StatusOr<std::unique_ptr<testing::ScopedVethPair>> veth =
        testing::ScopedVethPair::Create(kVeth, kPeer);
    ASSERT_TRUE(veth.ok()) << veth.status();
    veth_ = *std::move(veth);
    // Opened inside the namespace: the socket stays in it.
    absl::StatusOr<std::unique_ptr<EthtoolIoctl>> ethtool =
        EthtoolIoctl::Open();
    ASSERT_TRUE(ethtool.ok()) << ethtool.status();
    ethtool_ = *std::move(ethtool);
  }

  void TearDown() override {
    ethtool_.reset();
    veth_.reset();
    ns_.reset();  // back to the original namespace; this one vanishes
  }

  // Asserts `s` is the kernel's EOPNOTSUPP for `cmd` on the veth.
  static void ExpectNotSupported(const absl::Status& s,
                                 const std::string& cmd) {
    EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
    EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
    EXPECT_THAT(s.message(), HasSubstr("ethtool " + cmd + " " + kVeth));
  }

  std::unique_ptr<testing::ScopedNetns> ns_;
  std::unique_ptr<testing::ScopedVethPair> veth_;
  std::unique_ptr<EthtoolIoctl> ethtool_;
};

TEST_F(EthtoolIoctlVethTest, GetRxRingsIsNotSupported) {
  // net/ethtool/ioctl.c answers GRXRINGS from the driver's get_rxnfc (newer
  // trees: get_rx_ring_count, ethtool_get_rxrings()); veth has neither, so
  // the kernel says EOPNOTSUPP (observed on 6.18.44) although `ethtool -l`
  // shows 1 RX channel.
  ExpectNotSupported(ethtool_->GetRxRings(kVeth).status(), "GRXRINGS");
}

TEST_F(EthtoolIoctlVethTest, RuleCommandsAreNotSupported) {
  ExpectNotSupported(ethtool_->GetRules(kVeth).status(), "GRXCLSRLCNT");

  FlowRule rule;
  rule.match.family = AF_INET;
  rule.match.dst_ip = "10.9.8.7";
  rule.match.dst_port = 5201;
  rule.queue = 0;
  // A fixed location goes straight to SRXCLSRLINS; kRxClsLocAny would stop
  // at the GRXCLSRLCNT of the free-slot search.
  rule.location = 0;
  ExpectNotSupported(ethtool_->InsertRule(kVeth, rule).status(), "SRXCLSRLINS");
  rule.location = kRxClsLocAny;
  ExpectNotSupported(ethtool_->InsertRule(kVeth, rule).status(), "GRXCLSRLCNT");
  ExpectNotSupported(ethtool_->DeleteRule(kVeth, 0), "SRXCLSRLDEL");

  // Witness: ethtool(8) fails the same way.
  absl::StatusOr<testing::CommandResult> witness =
      testing::RunCommand({"ethtool", "-n", kVeth});
  ASSERT_TRUE(witness.ok()) << witness.status();
  EXPECT_NE(witness->exit_code, 0) << witness->output;
  EXPECT_THAT(witness->output, HasSubstr("Operation not supported"));
}

TEST_F(EthtoolIoctlVethTest, RssCommandsAreNotSupported) {
  // GRSSH fails, the GRXFHINDIR fallback fails too, and the GRSSH error is
  // the one returned.
  ExpectNotSupported(ethtool_->GetRss(kVeth, 0).status(), "GRSSH");
  ExpectNotSupported(ethtool_->GetRss(kVeth, 1).status(), "GRSSH");
  const std::vector<uint32_t> table = {0};
  ExpectNotSupported(ethtool_->CreateRssContext(kVeth, table).status(),
                     "SRSSH");
  ExpectNotSupported(ethtool_->SetRssIndir(kVeth, 0, {}), "SRXFHINDIR");
  ExpectNotSupported(ethtool_->DeleteRssContext(kVeth, 1), "SRSSH");

  absl::StatusOr<testing::CommandResult> witness =
      testing::RunCommand({"ethtool", "-x", kVeth});
  ASSERT_TRUE(witness.ok()) << witness.status();
  EXPECT_NE(witness->exit_code, 0) << witness->output;
}

TEST_F(EthtoolIoctlVethTest, UnknownInterfaceIsNoSuchDevice) {
  absl::StatusOr<RuleTableInfo> rules = ethtool_->GetRules("dvei9");
  EXPECT_EQ(StatusErrno(rules.status()), ENODEV) << rules.status();
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace devmem
