#include "daemon/nic/simulated/simulated_nic.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/nic/simulated/testing/simulated_nic_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace simnic_test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// --- Creation and lookup ---

TEST(SimulatedNicCreateTest, RejectsBadSpecs) {
  SimulatedNicSpec good{"sim0", 1};
  std::vector<std::pair<std::string, SimulatedNicSpec>> bad;
  SimulatedNicSpec s = good;
  s.name = "";
  bad.emplace_back("empty name", s);
  s = good;
  s.name = "a-name-far-too-long";
  bad.emplace_back("long name", s);
  s = good;
  s.ifindex = 0;
  bad.emplace_back("ifindex 0", s);
  s = good;
  s.combined_count = 17;
  bad.emplace_back("count above max", s);
  s = good;
  s.combined_count = 0;
  bad.emplace_back("count 0", s);
  s = good;
  s.hds_thresh = 2000;
  bad.emplace_back("hds above max", s);
  s = good;
  s.rule_table_size = 0;
  bad.emplace_back("no rule table", s);
  for (const auto& [why, spec] : bad) {
    EXPECT_TRUE(absl::IsInvalidArgument(SimulatedNic::Create({spec}).status()))
        << why;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      SimulatedNic::Create({good, SimulatedNicSpec{"sim0", 2}}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      SimulatedNic::Create({good, SimulatedNicSpec{"sim1", 1}}).status()));
  EXPECT_TRUE(
      SimulatedNic::Create({good, SimulatedNicSpec{"sim1", 2}}).status().ok());
}

TEST_F(SimulatedNicTest, UnknownIfindexIsEnodev) {
  EXPECT_EQ(nic_->BackendName(), "simulated");
  absl::StatusOr<ChannelsInfo> channels = nic_->GetChannels(99);
  ExpectErrno(channels.status(), ENODEV, "no device matches ifindex");
  EXPECT_THAT(channels.status().message(),
              HasSubstr("ethtool channels-get ifindex 99"));
  ExpectErrno(nic_->SetNtuple(99, true), ENODEV, "no device matches ifindex");
  UniqueFd mem = MakeMemfd();
  const uint32_t queue = 0;
  ExpectErrno(nic_->BindRx(99, mem.get_unowned(), {queue}).status(), ENODEV,
              "");
  ExpectErrno(nic_->GetQueues(99).status(), ENODEV, "");
  EXPECT_NE(nic_->FindSpec("sim0"), nullptr);
  EXPECT_EQ(nic_->FindSpec("eth0"), nullptr);
}

// --- Channels ---

TEST_F(SimulatedNicTest, ChannelsAreCombinedOnly) {
  absl::StatusOr<ChannelsInfo> channels = nic_->GetChannels(kIfindex);
  ASSERT_TRUE(channels.ok()) << channels.status();
  EXPECT_EQ(channels->combined_max, 16u);
  EXPECT_EQ(channels->combined_count, 8u);
  EXPECT_FALSE(channels->rx_max.has_value());
  EXPECT_FALSE(channels->rx_count.has_value());

  ASSERT_TRUE(SetCombined(4).ok());
  EXPECT_EQ(nic_->GetChannels(kIfindex)->combined_count, 4u);
  ASSERT_TRUE(SetCombined(16).ok());

  ExpectErrno(SetCombined(17), EINVAL,
              "requested channel count exceeds maximum");
  ExpectErrno(SetCombined(0), EINVAL,
              "requested channel counts would result in no RX or TX channel "
              "being configured");
  ChannelsSet rx;
  rx.rx_count = 2;
  ExpectErrno(nic_->SetChannels(kIfindex, rx), EINVAL,
              "requested channel count exceeds maximum");
  // Zero rx/tx is the current value: not a change.
  ChannelsSet zero;
  zero.rx_count = 0;
  zero.tx_count = 0;
  zero.combined_count = 16;
  const uint64_t before = Counters().changes;
  EXPECT_TRUE(nic_->SetChannels(kIfindex, zero).ok());
  EXPECT_EQ(Counters().changes, before);
}

TEST_F(SimulatedNicTest, DefaultRssFollowsChannelsButUserTableLimitsThem) {
  ASSERT_TRUE(SetCombined(2).ok());
  absl::StatusOr<RssInfo> rss = nic_->GetRss(kIfindex, 0);
  ASSERT_TRUE(rss.ok()) << rss.status();
  ASSERT_EQ(rss->indir.size(), 128u);
  EXPECT_EQ(rss->indir[3], 1u);
  ASSERT_TRUE(SetCombined(8).ok());
  EXPECT_EQ(nic_->GetRss(kIfindex, 0)->indir[7], 7u);

  // A user table using queue 5 forbids going to 5 queues or fewer.
  const std::vector<uint32_t> indir = {0, 5};
  ASSERT_TRUE(nic_->SetRssIndir(kIfindex, 0, indir).ok());
  EXPECT_TRUE(Counters().rss_configured);
  ExpectErrno(SetCombined(5), EINVAL,
              "requested channel counts are too low for existing indirection "
              "table (5)");
  EXPECT_TRUE(SetCombined(6).ok());
  // The user table stays as written.
  EXPECT_EQ(nic_->GetRss(kIfindex, 0)->indir[1], 5u);
  // Reset: the default spread again, no limit.
  ASSERT_TRUE(nic_->SetRssIndir(kIfindex, 0, {}).ok());
  EXPECT_FALSE(Counters().rss_configured);
  EXPECT_TRUE(SetCombined(1).ok());
}

TEST_F(SimulatedNicTest, RssContextLimitsChannels) {
  const std::vector<uint32_t> indir = {6, 7};
  absl::StatusOr<uint32_t> ctx = nic_->CreateRssContext(kIfindex, indir);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  ExpectErrno(SetCombined(7), EINVAL,
              "requested channel counts are too low for existing indirection "
              "table (7)");
  ASSERT_TRUE(nic_->DeleteRssContext(kIfindex, *ctx).ok());
  EXPECT_TRUE(SetCombined(7).ok());
}

TEST_F(SimulatedNicTest, NtupleRuleLimitsChannels) {
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, true).ok());
  absl::StatusOr<uint32_t> loc = nic_->InsertRule(kIfindex, TcpRule(6));
  ASSERT_TRUE(loc.ok()) << loc.status();
  ExpectErrno(SetCombined(6), EINVAL,
              "requested channel counts are too low for existing ntuple filter "
              "settings");
  EXPECT_TRUE(SetCombined(7).ok());
  ASSERT_TRUE(nic_->DeleteRule(kIfindex, *loc).ok());
  EXPECT_TRUE(SetCombined(2).ok());
}

TEST_F(SimulatedNicTest, BoundQueueLimitsChannelsLikeTheKernel) {
  EnableHds();
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> queues = {3};
  auto binding = nic_->BindRx(kIfindex, mem.get_unowned(), queues);
  ASSERT_TRUE(binding.ok()) << binding.status();
  // dev_get_min_mp_channel_count() is 4; ethtool_check_max_channel()
  // refuses counts <= 4, so 4 queues (which would keep queue 3) fail too.
  ExpectErrno(SetCombined(4), EINVAL,
              "requested channel counts are too low for existing memory "
              "provider setting (4)");
  ExpectErrno(SetCombined(2), EINVAL,
              "requested channel counts are too low for existing memory "
              "provider setting (4)");
  EXPECT_TRUE(SetCombined(5).ok());
  binding->reset();
  EXPECT_TRUE(SetCombined(1).ok());
}

// --- Rings ---

TEST_F(SimulatedNicTest, RingsReportHdsAndCheckTheMaximum) {
  absl::StatusOr<RingsInfo> rings = nic_->GetRings(kIfindex);
  ASSERT_TRUE(rings.ok()) << rings.status();
  EXPECT_EQ(rings->tcp_data_split, TcpDataSplit::kUnknown);
  EXPECT_EQ(rings->hds_thresh, 256u);
  EXPECT_EQ(rings->hds_thresh_max, 1024u);

  RingsSet too_big;
  too_big.hds_thresh = 1025;
  ExpectErrno(nic_->SetRings(kIfindex, too_big), EINVAL,
              "requested ring size exceeds maximum");

  // Only the fields that are set change.
  RingsSet split;
  split.tcp_data_split = TcpDataSplit::kEnabled;
  ASSERT_TRUE(nic_->SetRings(kIfindex, split).ok());
  rings = nic_->GetRings(kIfindex);
  EXPECT_EQ(rings->tcp_data_split, TcpDataSplit::kEnabled);
  EXPECT_EQ(rings->hds_thresh, 256u);
  RingsSet hds;
  hds.hds_thresh = 0;
  ASSERT_TRUE(nic_->SetRings(kIfindex, hds).ok());
  rings = nic_->GetRings(kIfindex);
  EXPECT_EQ(rings->tcp_data_split, TcpDataSplit::kEnabled);
  EXPECT_EQ(rings->hds_thresh, 0u);
}

TEST_F(SimulatedNicTest, RingsAreGuardedWhileBound) {
  EnableHds();
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> queues = {7};
  auto binding = nic_->BindRx(kIfindex, mem.get_unowned(), queues);
  ASSERT_TRUE(binding.ok()) << binding.status();

  RingsSet off;
  off.tcp_data_split = TcpDataSplit::kDisabled;
  ExpectErrno(nic_->SetRings(kIfindex, off), EINVAL,
              "can't disable tcp-data-split while device has memory provider "
              "enabled");
  RingsSet autosplit;
  autosplit.tcp_data_split = TcpDataSplit::kUnknown;
  ExpectErrno(nic_->SetRings(kIfindex, autosplit), EINVAL,
              "can't disable tcp-data-split while device has memory provider "
              "enabled");
  RingsSet hds;
  hds.hds_thresh = 128;
  ExpectErrno(nic_->SetRings(kIfindex, hds), EINVAL,
              "can't set non-zero hds_thresh while device is memory provider "
              "enabled");
  // Re-stating the current values is no change, so it passes.
  RingsSet same;
  same.tcp_data_split = TcpDataSplit::kEnabled;
  same.hds_thresh = 0;
  EXPECT_TRUE(nic_->SetRings(kIfindex, same).ok());

  binding->reset();
  EXPECT_TRUE(nic_->SetRings(kIfindex, off).ok());
  EXPECT_TRUE(nic_->SetRings(kIfindex, hds).ok());
}

// --- Features ---

TEST_F(SimulatedNicTest, NtupleToggles) {
  absl::StatusOr<FeaturesInfo> f = nic_->GetFeatures(kIfindex);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->ntuple_hw);
  EXPECT_FALSE(f->ntuple_active);
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, true).ok());
  EXPECT_TRUE(nic_->GetFeatures(kIfindex)->ntuple_active);
  ASSERT_TRUE(nic_->InsertRule(kIfindex, TcpRule(1)).ok());
  // bnxt-like: turning ntuple off drops the rules.
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, false).ok());
  EXPECT_FALSE(nic_->GetFeatures(kIfindex)->ntuple_active);
  EXPECT_EQ(Counters().rules, 0u);
}

TEST_F(SimulatedNicTest, NtupleOffCanKeepRules) {
  SimulatedNicSpec spec{"sim0", kIfindex};
  spec.ntuple_active = true;
  spec.ntuple_off_flushes_rules = false;
  Make(spec);
  ASSERT_TRUE(nic_->InsertRule(kIfindex, TcpRule(1)).ok());
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, false).ok());
  EXPECT_EQ(Counters().rules, 1u);
}

// --- RSS ---

TEST_F(SimulatedNicTest, RssIndirSizeAndRangeChecks) {
  absl::StatusOr<RssInfo> rss = nic_->GetRss(kIfindex, 0);
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_EQ(rss->hkey.size(), 40u);
  for (uint32_t i = 0; i < rss->indir.size(); ++i) {
    ASSERT_EQ(rss->indir[i], i % 8) << i;
  }

  // "ethtool -X equal 4 start 4": 4 entries repeated over 128.
  const std::vector<uint32_t> upper = {4, 5, 6, 7};
  ASSERT_TRUE(nic_->SetRssIndir(kIfindex, 0, upper).ok());
  rss = nic_->GetRss(kIfindex, 0);
  EXPECT_EQ(rss->indir[0], 4u);
  EXPECT_EQ(rss->indir[127], 7u);

  const std::vector<uint32_t> three = {0, 1, 2};
  ExpectErrno(nic_->SetRssIndir(kIfindex, 0, three), EINVAL,
              "size (3) mismatch with device indir table (128)");
  const std::vector<uint32_t> huge(256, 0);
  ExpectErrno(nic_->SetRssIndir(kIfindex, 0, huge), EINVAL,
              "size (256) mismatch with device indir table (128)");
  const std::vector<uint32_t> out_of_range = {0, 8};
  ExpectErrno(nic_->SetRssIndir(kIfindex, 0, out_of_range), EINVAL,
              "entry 1: queue out of range (8)");
  // Failed writes left the table alone.
  EXPECT_EQ(nic_->GetRss(kIfindex, 0)->indir[0], 4u);

  ASSERT_TRUE(nic_->SetRssIndir(kIfindex, 0, {}).ok());
  EXPECT_EQ(nic_->GetRss(kIfindex, 0)->indir[4], 4u);
}

TEST_F(SimulatedNicTest, RssContexts) {
  const std::vector<uint32_t> upper = {4, 5, 6, 7};
  absl::StatusOr<uint32_t> first = nic_->CreateRssContext(kIfindex, upper);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 1u);
  absl::StatusOr<uint32_t> second = nic_->CreateRssContext(kIfindex, {});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, 2u);
  EXPECT_EQ(Counters().rss_contexts, 2u);
  EXPECT_EQ(nic_->GetRss(kIfindex, 1)->indir[1], 5u);
  // A context made without a table gets the default spread.
  EXPECT_EQ(nic_->GetRss(kIfindex, 2)->indir[9], 1u);

  ExpectErrno(nic_->SetRssIndir(kIfindex, 1, {}), EINVAL,
              "can't reset table for a context");
  const std::vector<uint32_t> bad = {9};
  ExpectErrno(nic_->CreateRssContext(kIfindex, bad).status(), EINVAL,
              "entry 0: queue out of range (9)");
  const std::vector<uint32_t> one = {3};
  ASSERT_TRUE(nic_->SetRssIndir(kIfindex, 2, one).ok());
  EXPECT_EQ(nic_->GetRss(kIfindex, 2)->indir[100], 3u);
  // Writing a context does not mark the main table configured.
  EXPECT_FALSE(Counters().rss_configured);

  ExpectErrno(nic_->GetRss(kIfindex, 5).status(), ENOENT, "");
  ExpectErrno(nic_->SetRssIndir(kIfindex, 5, one), ENOENT, "");
  ExpectErrno(nic_->DeleteRssContext(kIfindex, 5), ENOENT, "");
  ExpectErrno(nic_->DeleteRssContext(kIfindex, 0), EINVAL, "");

  // A context a rule steers to cannot go.
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, true).ok());
  FlowRule rule = TcpRule(0);
  rule.rss_context = 1;
  absl::StatusOr<uint32_t> loc = nic_->InsertRule(kIfindex, rule);
  ASSERT_TRUE(loc.ok()) << loc.status();
  absl::Status busy = nic_->DeleteRssContext(kIfindex, 1);
  ExpectErrno(busy, EBUSY, "");
  EXPECT_THAT(busy.message(), HasSubstr("ntuple rule at location 255"));
  ASSERT_TRUE(nic_->DeleteRule(kIfindex, *loc).ok());
  ASSERT_TRUE(nic_->DeleteRssContext(kIfindex, 1).ok());
  // Ids are the lowest free.
  EXPECT_EQ(*nic_->CreateRssContext(kIfindex, {}), 1u);
}

// --- ntuple rules ---

TEST_F(SimulatedNicTest, RuleNeedsNtupleAndValidMatch) {
  absl::Status off = nic_->InsertRule(kIfindex, TcpRule(1)).status();
  EXPECT_EQ(StatusErrno(off), EOPNOTSUPP) << off;
  EXPECT_THAT(off.message(), HasSubstr("rx-ntuple-filter is off"));
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, true).ok());

  FlowRule rule = TcpRule(1);
  rule.match.family = AF_UNIX;
  EXPECT_EQ(StatusErrno(nic_->InsertRule(kIfindex, rule).status()), EINVAL);
  rule = TcpRule(1);
  rule.match.family = AF_INET;  // an IPv6 address in an IPv4 rule
  EXPECT_EQ(StatusErrno(nic_->InsertRule(kIfindex, rule).status()), EINVAL);
  EXPECT_EQ(StatusErrno(nic_->InsertRule(kIfindex, TcpRule(8)).status()),
            EINVAL);
  rule = TcpRule(0);
  rule.rss_context = 3;
  EXPECT_EQ(StatusErrno(nic_->InsertRule(kIfindex, rule).status()), EINVAL);
  // An RSS rule's queue is an offset: 4 + max entry 7 is past queue 7.
  const std::vector<uint32_t> upper = {4, 5, 6, 7};
  absl::StatusOr<uint32_t> ctx = nic_->CreateRssContext(kIfindex, upper);
  ASSERT_TRUE(ctx.ok());
  rule = TcpRule(4);
  rule.rss_context = *ctx;
  EXPECT_EQ(StatusErrno(nic_->InsertRule(kIfindex, rule).status()), EINVAL);
  EXPECT_EQ(Counters().rules, 0u);

  FlowRule v4;
  v4.match.family = AF_INET;
  v4.match.src_ip = "192.0.2.1";
  v4.match.dst_ip = "192.0.2.2";
  v4.match.src_port = 40000;
  v4.match.dst_port = 5201;
  v4.queue = 7;
  absl::StatusOr<uint32_t> loc = nic_->InsertRule(kIfindex, v4);
  ASSERT_TRUE(loc.ok()) << loc.status();
  absl::StatusOr<FlowRule> back = nic_->GetRule(kIfindex, *loc);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->match, v4.match);
  EXPECT_EQ(back->queue, 7u);
  EXPECT_EQ(back->location, *loc);
  EXPECT_FALSE(back->rss_context.has_value());
  ExpectErrno(nic_->GetRule(kIfindex, 3).status(), ENOENT, "");
}

TEST_F(SimulatedNicTest, RuleSlotSearchFromTheTopAndTableFull) {
  SimulatedNicSpec spec{"sim0", kIfindex};
  spec.rule_table_size = 4;
  spec.ntuple_active = true;
  Make(spec);
  EXPECT_EQ(*nic_->InsertRule(kIfindex, TcpRule(1, 1)), 3u);
  EXPECT_EQ(*nic_->InsertRule(kIfindex, TcpRule(1, 2)), 2u);
  FlowRule at0 = TcpRule(1, 3);
  at0.location = 0;
  EXPECT_EQ(*nic_->InsertRule(kIfindex, at0), 0u);
  ExpectErrno(nic_->InsertRule(kIfindex, at0).status(), EEXIST, "");
  FlowRule past = TcpRule(1, 3);
  past.location = 4;
  ExpectErrno(nic_->InsertRule(kIfindex, past).status(), EINVAL, "");
  EXPECT_EQ(*nic_->InsertRule(kIfindex, TcpRule(1, 4)), 1u);

  absl::Status full = nic_->InsertRule(kIfindex, TcpRule(1, 5)).status();
  ExpectErrno(full, ENOSPC, "");
  EXPECT_THAT(full.message(), HasSubstr("rule table full (4 of 4 used)"));

  absl::StatusOr<NicControl::RuleTable> table = nic_->ListRules(kIfindex);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_THAT(table->locations, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(table->table_size, 4u);

  ASSERT_TRUE(nic_->DeleteRule(kIfindex, 2).ok());
  ExpectErrno(nic_->DeleteRule(kIfindex, 2), ENOENT, "");
  EXPECT_EQ(*nic_->InsertRule(kIfindex, TcpRule(1, 6)), 2u);
}

TEST_F(SimulatedNicTest, DriverPicksTheLowestSlot) {
  SimulatedNicSpec spec{"sim0", kIfindex};
  spec.rule_table_size = 4;
  spec.ntuple_active = true;
  spec.driver_picks_location = true;
  Make(spec);
  EXPECT_EQ(*nic_->InsertRule(kIfindex, TcpRule(1, 1)), 0u);
  EXPECT_EQ(*nic_->InsertRule(kIfindex, TcpRule(1, 2)), 1u);
  ASSERT_TRUE(nic_->DeleteRule(kIfindex, 0).ok());
  EXPECT_EQ(*nic_->InsertRule(kIfindex, TcpRule(1, 3)), 0u);
}

// --- Bindings ---

TEST_F(SimulatedNicTest, MemfdIsBindablePipeIsNot) {
  UniqueFd mem = MakeMemfd();
  EXPECT_TRUE(nic_->CheckBindableFd(mem.get_unowned()).ok());
  Pipe pipe = MakePipe();
  absl::Status refused = nic_->CheckBindableFd(pipe.read.get_unowned());
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("not a dma-buf"));

  EnableHds();
  const std::vector<uint32_t> queues = {7};
  absl::Status rx =
      nic_->BindRx(kIfindex, pipe.read.get_unowned(), queues).status();
  EXPECT_TRUE(absl::IsInvalidArgument(rx)) << rx;
  absl::Status tx = nic_->BindTx(kIfindex, pipe.read.get_unowned()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(tx)) << tx;
  EXPECT_EQ(nic_->LiveBindings(), 0u);
}

// tools/testing/selftests/drivers/net/hw/ncdevmem.c test mode (KERNEL_API.md
// section 4), against the simulation: 8 queues, START = 4, n = 4.
TEST_F(SimulatedNicTest, NcdevmemTestModeSequence) {
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> queues = {4, 5, 6, 7};

  // RSS away from the devmem queues, and HDS on.
  const std::vector<uint32_t> equal4 = {0, 1, 2, 3};
  ASSERT_TRUE(nic_->SetRssIndir(kIfindex, 0, equal4).ok());
  EnableHds();

  // Bind with an empty queue list fails.
  ExpectErrno(nic_->BindRx(kIfindex, mem.get_unowned(), {}).status(), EINVAL,
              "");
  // HDS back to auto: bind fails.
  RingsSet autosplit;
  autosplit.tcp_data_split = TcpDataSplit::kUnknown;
  ASSERT_TRUE(nic_->SetRings(kIfindex, autosplit).ok());
  ExpectErrno(nic_->BindRx(kIfindex, mem.get_unowned(), queues).status(),
              EINVAL, "tcp-data-split is disabled");
  EXPECT_EQ(Counters().bound_rx_queues, 0u);
  // HDS on, threshold 0: bind succeeds.
  EnableHds();
  absl::StatusOr<std::unique_ptr<DevmemBinding>> binding =
      nic_->BindRx(kIfindex, mem.get_unowned(), queues);
  ASSERT_TRUE(binding.ok()) << binding.status();
  EXPECT_EQ((*binding)->ifindex(), kIfindex);
  EXPECT_THAT((*binding)->queues(), ElementsAre(4, 5, 6, 7));
  EXPECT_FALSE((*binding)->is_tx());
  EXPECT_EQ((*binding)->netlink_fd_unowned(), -1);
  // The failed bind with queues took id 1 (net_devmem_bind_dmabuf() allocates
  // before binding queues); the empty one never got that far.
  EXPECT_EQ((*binding)->id(), 2u);

  // Shrinking to n channels would drop bound queues.
  ExpectErrno(SetCombined(4), EINVAL,
              "requested channel counts are too low for existing memory "
              "provider setting (8)");
  // Closing the netlink socket (here: destroying the binding) unbinds.
  binding->reset();
  EXPECT_EQ(Counters().bound_rx_queues, 0u);
  absl::StatusOr<std::vector<QueueInfo>> q = nic_->GetQueues(kIfindex);
  ASSERT_TRUE(q.ok());
  for (const QueueInfo& queue : *q) EXPECT_FALSE(queue.dmabuf.has_value());
  EXPECT_TRUE(SetCombined(4).ok());
}

TEST_F(SimulatedNicTest, BindRxErrorsLeaveNothingBound) {
  UniqueFd mem = MakeMemfd();
  const int fd = mem.get_unowned();
  // Queue by queue, the range comes first: queue 8 fails on its range even
  // though tcp-data-split is still "auto".
  const std::vector<uint32_t> eight = {8};
  ExpectErrno(nic_->BindRx(kIfindex, fd, eight).status(), ERANGE,
              "rx queue index out of range");
  const std::vector<uint32_t> out_of_range = {7, 8};
  ExpectErrno(nic_->BindRx(kIfindex, fd, out_of_range).status(), EINVAL,
              "tcp-data-split is disabled");

  RingsSet split;
  split.tcp_data_split = TcpDataSplit::kEnabled;
  ASSERT_TRUE(nic_->SetRings(kIfindex, split).ok());
  const std::vector<uint32_t> six = {6};
  ExpectErrno(nic_->BindRx(kIfindex, fd, six).status(), EINVAL,
              "hds-thresh is not zero");
  EnableHds();

  // Queue 7 passes and is released again when queue 8 fails.
  ExpectErrno(nic_->BindRx(kIfindex, fd, out_of_range).status(), ERANGE,
              "rx queue index out of range");
  EXPECT_EQ(Counters().bound_rx_queues, 0u);

  auto first = nic_->BindRx(kIfindex, fd, six);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::vector<uint32_t> five_six = {5, 6};
  ExpectErrno(nic_->BindRx(kIfindex, fd, five_six).status(), EEXIST,
              "designated queue already memory provider bound");
  const std::vector<uint32_t> twice = {4, 4};
  ExpectErrno(nic_->BindRx(kIfindex, fd, twice).status(), EEXIST,
              "designated queue already memory provider bound");
  // Queue 5 and 4 were released with the failed requests.
  SimulatedNic::Counters c = Counters();
  EXPECT_EQ(c.bound_rx_queues, 1u);
  EXPECT_EQ(c.rx_bindings, 1u);
  EXPECT_EQ(nic_->LiveBindings(), 1u);
  const std::vector<uint32_t> four_five = {4, 5};
  EXPECT_TRUE(nic_->BindRx(kIfindex, fd, four_five).ok());
}

TEST_F(SimulatedNicTest, QueuesShowBindingsAndIdsAreCyclic) {
  EnableHds();
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> six = {6};
  const std::vector<uint32_t> seven = {7};
  auto a = nic_->BindRx(kIfindex, mem.get_unowned(), six);
  auto b = nic_->BindRx(kIfindex, mem.get_unowned(), seven);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->id(), 1u);
  EXPECT_EQ((*b)->id(), 2u);

  absl::StatusOr<std::vector<QueueInfo>> queues = nic_->GetQueues(kIfindex);
  ASSERT_TRUE(queues.ok()) << queues.status();
  ASSERT_EQ(queues->size(), 16u);
  for (size_t i = 0; i < 8; ++i) {
    const QueueInfo& rx = (*queues)[i];
    const QueueInfo& tx = (*queues)[8 + i];
    EXPECT_EQ(rx.type, QueueInfo::Type::kRx);
    EXPECT_EQ(tx.type, QueueInfo::Type::kTx);
    EXPECT_EQ(rx.id, i);
    EXPECT_EQ(tx.id, i);
    EXPECT_TRUE(rx.napi_id.has_value());
    EXPECT_EQ(rx.napi_id, tx.napi_id);
    EXPECT_FALSE(tx.dmabuf.has_value());
  }
  EXPECT_EQ((*queues)[6].dmabuf, 1u);
  EXPECT_EQ((*queues)[7].dmabuf, 2u);
  EXPECT_FALSE((*queues)[5].dmabuf.has_value());

  a->reset();
  EXPECT_FALSE(nic_->GetQueues(kIfindex)->at(6).dmabuf.has_value());
  // Freed ids are not reused until the counter wraps.
  auto c = nic_->BindRx(kIfindex, mem.get_unowned(), six);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->id(), 3u);
}

TEST_F(SimulatedNicTest, BindTx) {
  UniqueFd mem = MakeMemfd();
  auto tx = nic_->BindTx(kIfindex, mem.get_unowned());
  ASSERT_TRUE(tx.ok()) << tx.status();
  EXPECT_TRUE((*tx)->is_tx());
  EXPECT_THAT((*tx)->queues(), IsEmpty());
  EXPECT_EQ((*tx)->id(), 1u);
  EXPECT_EQ(Counters().tx_bindings, 1u);
  // TX bindings share the id space and leave RX free (no HDS needed).
  EnableHds();
  const std::vector<uint32_t> zero = {0};
  auto rx = nic_->BindRx(kIfindex, mem.get_unowned(), zero);
  ASSERT_TRUE(rx.ok()) << rx.status();
  EXPECT_EQ((*rx)->id(), 2u);
  tx->reset();
  EXPECT_EQ(Counters().tx_bindings, 0u);
  EXPECT_EQ(nic_->LiveBindings(), 1u);
}

TEST_F(SimulatedNicTest, BindingMayOutliveTheNic) {
  EnableHds();
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> queues = {7};
  absl::StatusOr<std::unique_ptr<DevmemBinding>> binding =
      nic_->BindRx(kIfindex, mem.get_unowned(), queues);
  ASSERT_TRUE(binding.ok()) << binding.status();
  // The binding keeps its own reference to the memory.
  mem.Reset();
  nic_.reset();
  EXPECT_EQ((*binding)->id(), 1u);
  binding->reset();  // must not touch freed memory (run under ASan to see)
}

// --- Fault hook ---

TEST_F(SimulatedNicTest, FailNextFailsOnceAndChangesNothing) {
  const uint64_t before = Counters().changes;
  nic_->FailNext(SimOp::kSetChannels, ErrnoStatus(EIO, "injected"));
  nic_->FailNext(SimOp::kSetChannels, ErrnoStatus(EBUSY, "injected"));
  nic_->FailNext(SimOp::kSetChannels, absl::OkStatus());  // ignored
  EXPECT_EQ(StatusErrno(SetCombined(4)), EIO);
  EXPECT_EQ(StatusErrno(SetCombined(4)), EBUSY);
  EXPECT_EQ(nic_->GetChannels(kIfindex)->combined_count, 8u);
  EXPECT_EQ(Counters().changes, before);
  EXPECT_TRUE(SetCombined(4).ok());

  EnableHds();
  nic_->FailNext(SimOp::kBindRx, ErrnoStatus(ENODATA, "injected"));
  UniqueFd mem = MakeMemfd();
  const std::vector<uint32_t> queues = {3};
  EXPECT_EQ(
      StatusErrno(nic_->BindRx(kIfindex, mem.get_unowned(), queues).status()),
      ENODATA);
  EXPECT_EQ(Counters().bound_rx_queues, 0u);
  EXPECT_EQ(nic_->LiveBindings(), 0u);
  // An injected failure happens before the id is taken.
  auto ok = nic_->BindRx(kIfindex, mem.get_unowned(), queues);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->id(), 1u);

  // Other ops are unaffected by a fault queued for one.
  nic_->FailNext(SimOp::kInsertRule, ErrnoStatus(EIO, "injected"));
  EXPECT_TRUE(nic_->GetRings(kIfindex).ok());
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, true).ok());
  EXPECT_EQ(StatusErrno(nic_->InsertRule(kIfindex, TcpRule(1)).status()), EIO);
  EXPECT_EQ(Counters().rules, 0u);
}

// --- Concurrency ---

TEST_F(SimulatedNicTest, ConcurrentRuleChurn) {
  ASSERT_TRUE(nic_->SetNtuple(kIfindex, true).ok());
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<uint32_t> loc = nic_->InsertRule(
            kIfindex, TcpRule(t, static_cast<uint16_t>(1000 + i)));
        ASSERT_TRUE(loc.ok()) << loc.status();
        ASSERT_TRUE(nic_->GetRule(kIfindex, *loc).ok());
        ASSERT_TRUE(nic_->DeleteRule(kIfindex, *loc).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(Counters().rules, 0u);
  EXPECT_EQ(Counters().changes, 400u + 1u);
}

}  // namespace
}  // namespace simnic_test
}  // namespace devmem
