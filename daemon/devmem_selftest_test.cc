// RunDevmemSelftest against the simulated devmem NIC, which enforces the
// kernel's rules: the whole ncdevmem test-mode sequence passes with a memfd
// as device memory, failing steps are reported with the kernel's text, and
// the NIC always ends up as it was recorded.

#include "kernel/devmem_selftest.h"

#include <cerrno>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/nic/testing/hooked_nic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/nic_control.h"
#include "kernel/udmabuf.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint32_t kIfindex = 7;
constexpr char kName[] = "sim0";

class DevmemSelftestTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(/*combined_count=*/8); }

  void Make(uint32_t combined_count) {
    SimulatedNicSpec spec;
    spec.name = kName;
    spec.ifindex = kIfindex;
    spec.combined_count = combined_count;
    absl::StatusOr<std::unique_ptr<SimulatedNic>> nic =
        SimulatedNic::Create({spec});
    ASSERT_TRUE(nic.ok()) << nic.status();
    nic_ = *std::move(nic);
    absl::StatusOr<UniqueFd> memfd = CreateSealedMemfd(1 << 20, "selftest");
    ASSERT_TRUE(memfd.ok()) << memfd.status();
    memfd_ = *std::move(memfd);
  }

  SelftestResult Run(NicControl& control) {
    reported_.clear();
    return RunDevmemSelftest(
        control, kIfindex, kName, memfd_.get_unowned(),
        [this](const SelftestStep& step) { reported_.push_back(step.name); });
  }

  static const SelftestStep* Find(const SelftestResult& r,
                                  const std::string& prefix) {
    for (const SelftestStep& s : r.steps) {
      if (s.name.rfind(prefix, 0) == 0) return &s;
    }
    return nullptr;
  }

  // The NIC as the spec made it: nothing left bound, split and hds as they
  // were, default RSS, 8 channels.
  void ExpectPristine() {
    absl::StatusOr<SimulatedNic::Counters> c = nic_->GetCounters(kIfindex);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->bound_rx_queues, 0u);
    EXPECT_EQ(c->rx_bindings, 0u);
    EXPECT_FALSE(c->rss_configured);
    EXPECT_EQ(nic_->LiveBindings(), 0u);
    absl::StatusOr<RingsInfo> rings = nic_->GetRings(kIfindex);
    ASSERT_TRUE(rings.ok());
    EXPECT_EQ(rings->tcp_data_split, TcpDataSplit::kUnknown);
    EXPECT_EQ(rings->hds_thresh, 256u);
    absl::StatusOr<ChannelsInfo> ch = nic_->GetChannels(kIfindex);
    ASSERT_TRUE(ch.ok());
    EXPECT_EQ(ch->combined_count, 8u);
  }

  std::unique_ptr<SimulatedNic> nic_;
  UniqueFd memfd_;
  std::vector<std::string> reported_;
};

TEST_F(DevmemSelftestTest, WholeSequencePassesAndRestores) {
  SelftestResult r = Run(*nic_);
  for (const SelftestStep& s : r.steps) {
    EXPECT_TRUE(s.passed) << s.name << ": " << s.detail;
  }
  EXPECT_TRUE(r.ran);
  EXPECT_TRUE(r.restored);
  EXPECT_TRUE(r.passed());
  EXPECT_TRUE(r.missing.empty());
  EXPECT_THAT(reported_,
              ElementsAre("probe", "record", "rss", "hds on",
                          "(a) bind without queues fails",
                          "(b) bind with split off fails", "(c) bind succeeds",
                          "(d) channels below bound queues refused",
                          "(e) unbind on close", "restore"));
  EXPECT_THAT(Find(r, "probe")->detail,
              HasSubstr("8 RX queues, testing queues 4-7"));
  EXPECT_THAT(Find(r, "probe")->detail, HasSubstr("memory: memfd"));
  EXPECT_THAT(Find(r, "record")->detail,
              HasSubstr("combined 8 (max 16); tcp-data-split unknown (auto), "
                        "hds-thresh 256 (max 1024); RSS 128 entries over "
                        "queues 0-7"));
  EXPECT_THAT(Find(r, "rss")->detail, HasSubstr("queues 0-3"));
  EXPECT_THAT(Find(r, "(b)")->detail,
              HasSubstr("(kernel: tcp-data-split is disabled)"));
  EXPECT_THAT(Find(r, "(b)")->detail, Not(HasSubstr("6.14+")));
  EXPECT_THAT(Find(r, "(c)")->detail,
              HasSubstr("on RX queues 4-7; queue-get shows it there"));
  EXPECT_THAT(Find(r, "(d)")->detail,
              HasSubstr("combined 4 refused: ethtool channels-set sim0: "
                        "Invalid argument (errno 22) (kernel: requested "
                        "channel counts are too low for existing memory "
                        "provider setting (8))"));
  EXPECT_THAT(Find(r, "(e)")->detail, HasSubstr("show no dma-buf"));
  ExpectPristine();
}

TEST_F(DevmemSelftestTest, FailedBindIsReportedAndNicRestored) {
  // Three refusals: (a) and (b) expect one, (c) gets the third.
  for (int i = 0; i < 3; ++i) {
    nic_->FailNext(SimOp::kBindRx, ErrnoStatus(ENODATA, "netdev bind-rx sim0"));
  }
  SelftestResult r = Run(*nic_);
  EXPECT_TRUE(r.ran);
  EXPECT_FALSE(r.passed());
  EXPECT_TRUE(r.restored);
  EXPECT_TRUE(Find(r, "(a)")->passed);
  EXPECT_TRUE(Find(r, "(b)")->passed);
  // Not the kernel's split refusal: (b) says what 6.14+ would have said.
  EXPECT_THAT(Find(r, "(b)")->detail, HasSubstr("6.14+ kernels say"));
  const SelftestStep* c = Find(r, "(c)");
  EXPECT_FALSE(c->passed);
  EXPECT_THAT(c->detail, HasSubstr("bind-rx on queues 4-7 failed: netdev "
                                   "bind-rx sim0: No data available (errno "
                                   "61)"));
  EXPECT_FALSE(Find(r, "(d)")->passed);
  EXPECT_THAT(Find(r, "(d)")->detail, HasSubstr("not run: no binding"));
  EXPECT_THAT(Find(r, "(e)")->detail, HasSubstr("not run"));
  EXPECT_TRUE(Find(r, "restore")->passed) << Find(r, "restore")->detail;
  ExpectPristine();
}

TEST_F(DevmemSelftestTest, HeaderSplitRefusedStopsTheSequence) {
  nic_->FailNext(SimOp::kSetRings,
                 ErrnoStatus(EOPNOTSUPP, "ethtool rings-set sim0",
                             "setting TCP data split is not supported"));
  SelftestResult r = Run(*nic_);
  EXPECT_TRUE(r.ran);
  EXPECT_FALSE(r.passed());
  const SelftestStep* hds = Find(r, "hds on");
  EXPECT_FALSE(hds->passed);
  EXPECT_THAT(hds->detail,
              HasSubstr("(kernel: setting TCP data split is not supported)"));
  for (const char* name : {"(a)", "(b)", "(c)", "(d)", "(e)"}) {
    EXPECT_THAT(Find(r, name)->detail, HasSubstr("not run")) << name;
  }
  EXPECT_TRUE(r.restored);
  ExpectPristine();
}

TEST_F(DevmemSelftestTest, ChannelShrinkAllowedIsAFailureAndPutBack) {
  HookedNic hooked(nic_.get());
  bool shrunk = false;
  // A NIC that wrongly lets a bound queue go: it reports success without
  // changing anything; the selftest must flag it and put channels back.
  hooked.set_channels_hook = [&](int call) -> std::optional<absl::Status> {
    if (call == 1) {
      shrunk = true;
      return absl::OkStatus();
    }
    return std::nullopt;
  };
  SelftestResult r = Run(hooked);
  EXPECT_TRUE(shrunk);
  const SelftestStep* d = Find(r, "(d)");
  EXPECT_FALSE(d->passed);
  EXPECT_THAT(d->detail, HasSubstr("the kernel accepted combined 4 under "
                                   "bound queues 4-7; channels put back: ok"));
  EXPECT_TRUE(Find(r, "(e)")->passed);
  EXPECT_FALSE(r.passed());
  EXPECT_TRUE(r.restored);
  ExpectPristine();
}

TEST_F(DevmemSelftestTest, RestoreFailureIsReported) {
  HookedNic hooked(nic_.get());
  // SetRings calls: hds on, (b) unknown, (c) enabled, then the restore.
  hooked.set_rings_hook = [](int call) -> std::optional<absl::Status> {
    if (call == 4) {
      return ErrnoStatus(EBUSY, "ethtool rings-set sim0");
    }
    return std::nullopt;
  };
  SelftestResult r = Run(hooked);
  EXPECT_TRUE(r.ran);
  EXPECT_FALSE(r.restored);
  EXPECT_FALSE(r.passed());
  const SelftestStep* restore = Find(r, "restore");
  EXPECT_FALSE(restore->passed);
  EXPECT_THAT(restore->detail,
              HasSubstr("sim0 is NOT as recorded: rings: ethtool rings-set "
                        "sim0: Device or resource busy (errno 16)"));
  EXPECT_THAT(restore->detail,
              HasSubstr("tcp-data-split is enabled, was unknown (auto)"));
  EXPECT_THAT(restore->detail, HasSubstr("hds-thresh is 0, was 256"));
}

TEST_F(DevmemSelftestTest, NotCapableSaysWhyAndChangesNothing) {
  Make(/*combined_count=*/1);
  HookedNic hooked(nic_.get());
  hooked.features_hook = []() -> std::optional<absl::StatusOr<FeaturesInfo>> {
    FeaturesInfo f;  // rx-ntuple-filter off [fixed], as on veth
    f.feature_count = 60;
    return f;
  };
  nic_->FailNext(SimOp::kGetRings,
                 ErrnoStatus(EOPNOTSUPP, "ethtool rings-get sim0"));
  nic_->FailNext(SimOp::kGetRss,
                 ErrnoStatus(EOPNOTSUPP, "ethtool rss-get sim0"));
  const absl::Status no_exporter = absl::FailedPreconditionError(
      "no dma-buf exporter: /dev/udmabuf is missing");
  reported_.clear();
  SelftestResult r = RunDevmemSelftest(
      hooked, kIfindex, kName, no_exporter,
      [this](const SelftestStep& step) { reported_.push_back(step.name); });
  EXPECT_FALSE(r.ran);
  EXPECT_FALSE(r.passed());
  EXPECT_TRUE(r.restored);
  EXPECT_THAT(reported_, ElementsAre("probe"));
  std::vector<std::string> names;
  for (const Capability& c : r.missing) names.push_back(c.name);
  EXPECT_THAT(names,
              ElementsAre("channels", "rings", "ntuple", "rss", "dma-buf"));
  EXPECT_EQ(r.missing[1].error, EOPNOTSUPP);
  EXPECT_EQ(r.missing[1].support, Support::kUnsupported);
  EXPECT_THAT(r.missing[1].reason,
              HasSubstr("ethtool rings-get sim0: Operation not supported"));
  EXPECT_THAT(r.missing[0].reason, HasSubstr("1 RX queue(s)"));
  EXPECT_THAT(r.missing[4].reason, HasSubstr("no dma-buf exporter"));
  EXPECT_THAT(r.steps[0].detail,
              HasSubstr("cannot run on sim0, nothing was changed; channels: "));
  absl::StatusOr<SimulatedNic::Counters> c = nic_->GetCounters(kIfindex);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->changes, 0u);
}

TEST_F(DevmemSelftestTest, BusyQueuesBlockTheRun) {
  // Someone else (devmemd) already holds queue 5.
  ASSERT_TRUE(
      nic_->SetRings(kIfindex, RingsSet{TcpDataSplit::kEnabled, 0}).ok());
  const uint32_t q[] = {5};
  absl::StatusOr<std::unique_ptr<DevmemBinding>> held =
      nic_->BindRx(kIfindex, memfd_.get_unowned(), q);
  ASSERT_TRUE(held.ok()) << held.status();
  SelftestResult r = Run(*nic_);
  EXPECT_FALSE(r.ran);
  ASSERT_EQ(r.missing.size(), 1u);
  EXPECT_EQ(r.missing[0].name, "queues");
  EXPECT_EQ(r.missing[0].error, EBUSY);
  EXPECT_THAT(r.missing[0].reason,
              HasSubstr("RX queue 5 is already owned by dma-buf "));
}

TEST_F(DevmemSelftestTest, OtherFdIsNotBindable) {
  if (ClassifyFd(0) != DmabufKind::kOther) GTEST_SKIP() << "stdin is memory";
  SelftestResult r = RunDevmemSelftest(*nic_, kIfindex, kName, /*dmabuf_fd=*/0);
  EXPECT_FALSE(r.ran);
  ASSERT_EQ(r.missing.size(), 1u);
  EXPECT_EQ(r.missing[0].name, "dma-buf");
  EXPECT_THAT(r.missing[0].reason,
              HasSubstr("the simulated NIC binds only a dma-buf or a memfd"));
}

}  // namespace
}  // namespace devmem
