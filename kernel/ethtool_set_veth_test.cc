// EthtoolNetlink's SETs and RSS requests against the real kernel, on a veth
// pair with four RX and four TX queues in a private network namespace, with
// ethtool(8) as the independent witness. Needs root (CAP_SYS_ADMIN for the
// namespace, CAP_NET_ADMIN for the SETs); skips with the reason otherwise.
//
// veth (drivers/net/veth.c veth_ethtool_ops) has get/set_channels but no ring
// parameters, no ntuple filters and no RSS ops: those must fail with the
// kernel's own errno and extack, carried through the Status.

#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/ethtool_msg.h"
#include "kernel/ethtool_netlink.h"
#include "kernel/testing/kernel_version.h"
#include "kernel/testing/netns_veth.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

constexpr char kVeth[] = "dmset0";
constexpr char kPeer[] = "dmset1";
constexpr int kQueues = 4;

// "Current hardware settings" RX/TX of `ethtool -l IF`.
struct WitnessChannels {
  std::optional<uint32_t> rx, tx;
};

WitnessChannels ParseCurrentChannels(const std::string& text) {
  WitnessChannels out;
  bool current = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "Current hardware settings")) current = true;
    if (!current) continue;
    std::vector<std::string> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() != 2) continue;
    uint32_t value = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(kv[1]), &value)) continue;
    if (kv[0] == "RX") out.rx = value;
    if (kv[0] == "TX") out.tx = value;
  }
  return out;
}

class EthtoolSetVethTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root to create a network namespace and a veth "
                      "pair and to change it (euid "
                   << geteuid() << ")";
    }
    absl::StatusOr<std::unique_ptr<testing::ScopedNetns>> ns =
        testing::ScopedNetns::Enter();
    if (!ns.ok()) {
      if (StatusErrno(ns.status()) == EPERM) {
        GTEST_SKIP() << "cannot create a network namespace: " << ns.status();
      }
      FAIL() << ns.status();
    }
    ns_ = *std::move(ns);
    // ScopedVethPair makes single-queue pairs; channels need more. The
    // namespace deletes the pair when it goes, even if a step below fails.
    const std::string queues = std::to_string(kQueues);
    Witness({"ip", "link", "add", kVeth, "numrxqueues", queues, "numtxqueues",
             queues, "type", "veth", "peer", "name", kPeer, "numrxqueues",
             queues, "numtxqueues", queues});
    Witness({"ip", "link", "set", kVeth, "up"});
    Witness({"ip", "link", "set", kPeer, "up"});
    ifindex_ = if_nametoindex(kVeth);
    ASSERT_NE(ifindex_, 0u);
    // Opened inside the namespace, so the socket talks to its devices.
    absl::StatusOr<std::unique_ptr<EthtoolNetlink>> opened =
        EthtoolNetlink::Open();
    ASSERT_TRUE(opened.ok()) << opened.status();
    ethtool_ = *std::move(opened);
  }

  void TearDown() override {
    ethtool_.reset();
    if (ns_ != nullptr) (void)testing::RunQuiet({"ip", "link", "del", kVeth});
  }

  // Runs a witness command that must succeed; returns its output.
  std::string Witness(const std::vector<std::string>& argv) {
    absl::StatusOr<testing::CommandResult> r = testing::RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_EQ(r->exit_code, 0)
        << absl::StrJoin(argv, " ") << " failed: " << r->output;
    return r->output;
  }

  WitnessChannels EthtoolL() {
    return ParseCurrentChannels(Witness({"ethtool", "-l", kVeth}));
  }

  std::unique_ptr<testing::ScopedNetns> ns_;
  uint32_t ifindex_ = 0;
  std::unique_ptr<EthtoolNetlink> ethtool_;
};

TEST_F(EthtoolSetVethTest, ChannelsRoundTripSeenByEthtool) {
  absl::StatusOr<ChannelsInfo> before = ethtool_->GetChannels(ifindex_);
  ASSERT_TRUE(before.ok()) << before.status();
  // veth_get_channels(): maximums are the queues it was created with, and a
  // new veth uses all of them.
  EXPECT_EQ(before->rx_max, static_cast<uint32_t>(kQueues));
  EXPECT_EQ(before->tx_max, static_cast<uint32_t>(kQueues));
  ASSERT_EQ(before->rx_count, static_cast<uint32_t>(kQueues));
  ASSERT_EQ(before->tx_count, static_cast<uint32_t>(kQueues));

  ChannelsSet smaller;
  smaller.rx_count = 2;
  smaller.tx_count = 3;
  absl::Status s = ethtool_->SetChannels(ifindex_, smaller);
  ASSERT_TRUE(s.ok()) << s;
  WitnessChannels witness = EthtoolL();
  EXPECT_EQ(witness.rx, 2u);
  EXPECT_EQ(witness.tx, 3u);
  absl::StatusOr<ChannelsInfo> after = ethtool_->GetChannels(ifindex_);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->rx_count, 2u);
  EXPECT_EQ(after->tx_count, 3u);

  // Only what is set is written: TX alone leaves RX at 2.
  ChannelsSet tx_only;
  tx_only.tx_count = 1;
  ASSERT_TRUE(ethtool_->SetChannels(ifindex_, tx_only).ok());
  witness = EthtoolL();
  EXPECT_EQ(witness.rx, 2u);
  EXPECT_EQ(witness.tx, 1u);

  ChannelsSet restore;
  restore.rx_count = *before->rx_count;
  restore.tx_count = *before->tx_count;
  s = ethtool_->SetChannels(ifindex_, restore);
  ASSERT_TRUE(s.ok()) << s;
  witness = EthtoolL();
  EXPECT_EQ(witness.rx, static_cast<uint32_t>(kQueues));
  EXPECT_EQ(witness.tx, static_cast<uint32_t>(kQueues));
}

TEST_F(EthtoolSetVethTest, ChannelsAboveTheMaximumCarryTheKernelsText) {
  ChannelsSet too_many;
  too_many.rx_count = kQueues + 1;
  absl::Status s = ethtool_->SetChannels(ifindex_, too_many);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(StatusErrno(s), EINVAL);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // net/ethtool/channels.c ethnl_set_channels().
  EXPECT_EQ(StatusExtack(s), "requested channel count exceeds maximum");
  EXPECT_THAT(s.message(), HasSubstr("ethtool channels-set dmset0"));
  // Nothing changed (ethtool -l).
  EXPECT_EQ(EthtoolL().rx, static_cast<uint32_t>(kQueues));
}

TEST_F(EthtoolSetVethTest, TcpDataSplitIsRefusedWithTheKernelsText) {
  RingsSet rings;
  rings.tcp_data_split = TcpDataSplit::kEnabled;
  absl::Status s = ethtool_->SetRings(ifindex_, rings);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  // net/ethtool/rings.c ethnl_set_rings_validate(): veth has no
  // ETHTOOL_RING_USE_TCP_DATA_SPLIT in supported_ring_params.
  EXPECT_EQ(StatusExtack(s), "setting TCP data split is not supported");
  EXPECT_THAT(s.message(), HasSubstr("ethtool rings-set dmset0"));
}

TEST_F(EthtoolSetVethTest, NtupleOnIsReportedAsFixedOff) {
  absl::Status s = ethtool_->SetNtuple(ifindex_, /*enable=*/true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("rx-ntuple-filter is fixed off on "
                                     "dmset0"));
  EXPECT_THAT(s.message(), HasSubstr("not in the device's changeable (hw)"));
  // ethtool -k agrees: off and fixed.
  const std::string k = Witness({"ethtool", "-k", kVeth});
  EXPECT_THAT(k, HasSubstr("ntuple-filters: off [fixed]"));
  // Asking for the state it already has is fine.
  s = ethtool_->SetNtuple(ifindex_, /*enable=*/false);
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(EthtoolSetVethTest, RssIsNotSupported) {
  absl::StatusOr<RssInfo> rss = ethtool_->GetRss(ifindex_, 0);
  ASSERT_FALSE(rss.ok());
  EXPECT_EQ(StatusErrno(rss.status()), EOPNOTSUPP);
  EXPECT_THAT(rss.status().message(), HasSubstr("ethtool rss-get dmset0"));
  // ethtool -x (ioctl in ethtool 6.1) fails the same way.
  absl::StatusOr<testing::CommandResult> x =
      testing::RunCommand({"ethtool", "-x", kVeth});
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_NE(x->exit_code, 0);
  EXPECT_THAT(x->output, HasSubstr("Operation not supported"));

  const std::vector<uint32_t> indir = {0, 1};
  if (!testing::KernelAtLeast(6, 17)) {
    // Before 6.17 the family has no RSS ops: refused before any request,
    // naming the op and the version (the kernel matrix's 6.12 guest).
    EXPECT_FALSE(ethtool_->HasOp(ETHTOOL_MSG_RSS_SET));
    EXPECT_FALSE(ethtool_->HasOp(ETHTOOL_MSG_RSS_CREATE_ACT));
    absl::Status s = ethtool_->SetRssIndir(ifindex_, 0, indir);
    EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
    EXPECT_THAT(s.message(),
                HasSubstr("has no RSS_SET (op 48, added in 6.17)"));
    return;
  }
  // 6.17 and later have the RSS ops; veth has no set_rxfh.
  ASSERT_TRUE(ethtool_->HasOp(ETHTOOL_MSG_RSS_SET));
  ASSERT_TRUE(ethtool_->HasOp(ETHTOOL_MSG_RSS_CREATE_ACT));
  ASSERT_TRUE(ethtool_->HasOp(ETHTOOL_MSG_RSS_DELETE_ACT));
  absl::Status s = ethtool_->SetRssIndir(ifindex_, 0, indir);
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
  EXPECT_THAT(s.message(), HasSubstr("ethtool rss-set dmset0"));
  absl::StatusOr<uint32_t> created =
      ethtool_->CreateRssContext(ifindex_, indir);
  EXPECT_EQ(StatusErrno(created.status()), EOPNOTSUPP) << created.status();
  EXPECT_THAT(created.status().message(),
              HasSubstr("ethtool rss-create-act dmset0"));
  s = ethtool_->DeleteRssContext(ifindex_, 1);
  EXPECT_EQ(StatusErrno(s), EOPNOTSUPP) << s;
  EXPECT_THAT(s.message(), HasSubstr("ethtool rss-delete-act dmset0"));
}

TEST_F(EthtoolSetVethTest, SetsOnAMissingDeviceNameTheIfindex) {
  constexpr uint32_t kNoSuchIfindex = 0x7ffffff0;
  ChannelsSet channels;
  channels.rx_count = 1;
  absl::Status s = ethtool_->SetChannels(kNoSuchIfindex, channels);
  EXPECT_EQ(StatusErrno(s), ENODEV);
  EXPECT_EQ(StatusExtack(s), "no device matches ifindex");
  EXPECT_THAT(s.message(), HasSubstr("channels-set ifindex 2147483632"));
}

TEST_F(EthtoolSetVethTest, SocketStaysInStepAcrossAckedRequests) {
  // SETs end with an ACK, FEATURES_SET also sends a reply first; a GET after
  // each must still read its own answer.
  for (int round = 0; round < 3; ++round) {
    ChannelsSet channels;
    channels.rx_count = 1 + round % 2;
    ASSERT_TRUE(ethtool_->SetChannels(ifindex_, channels).ok());
    EXPECT_FALSE(ethtool_->SetNtuple(ifindex_, /*enable=*/true).ok());
    absl::StatusOr<ChannelsInfo> got = ethtool_->GetChannels(ifindex_);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->rx_count, channels.rx_count);
    EXPECT_TRUE(ethtool_->GetFeatures(ifindex_).ok());
  }
}

}  // namespace
}  // namespace devmem
