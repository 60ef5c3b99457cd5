#include "daemon/nic/nic_manager.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/nic/testing/sim0.h"
#include "daemon/nic/testing/test_tuple.h"
#include "kernel/errno_status.h"
#include "kernel/testing/fake_nic_inventory.h"
#include "kernel/testing/fake_pci.h"

namespace devmem {
namespace {

using devmem::v1::PROFILE_STATE_APPLIED;
using devmem::v1::PROFILE_STATE_FAILED;
using devmem::v1::PROFILE_STATE_NOT_CAPABLE;
using devmem::v1::PROFILE_STATE_RESTORED;

constexpr uint32_t kIfindex = 7;

UniqueFd Memfd() { return UniqueFd(memfd_create("devmem-test", MFD_CLOEXEC)); }

class NicManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_dir_ = TestDir() + "-state";
    config_ = Sim0Config(state_dir_);
    sim_ = Sim0(kIfindex);
    ASSERT_NE(sim_, nullptr);
    inventory_ = Sim0Inventory(kIfindex);
  }

  std::unique_ptr<NicManager> Make() {
    NicManager::Options o;
    o.config = &config_;
    o.control = sim_.get();
    o.inventory = inventory_.get();
    return std::make_unique<NicManager>(o);
  }

  devmem::v1::NicState State(NicManager& m) {
    auto states = m.States({"sim0"});
    EXPECT_TRUE(states.ok()) << states.status();
    return states.ok() ? (*states)[0] : devmem::v1::NicState();
  }

  uint64_t Changes() { return sim_->GetCounters(kIfindex)->changes; }

  std::string state_dir_;
  devmem::v1::DaemonConfig config_;
  std::unique_ptr<SimulatedNic> sim_;
  std::unique_ptr<FakeNicInventory> inventory_;
};

TEST_F(NicManagerTest, AppliesProfileAndRestoresExactlyWhatItRecorded) {
  auto m = Make();
  auto lines = m->ApplyAll();
  ASSERT_EQ(lines.size(), 1u);
  const devmem::v1::NicState st = State(*m);
  ASSERT_EQ(st.state(), PROFILE_STATE_APPLIED) << st.reason();
  // Pool = the top two of 8 RX queues, as ncdevmem picks them.
  EXPECT_EQ(
      std::vector<uint32_t>(st.pool_queues().begin(), st.pool_queues().end()),
      (std::vector<uint32_t>{6, 7}));
  EXPECT_EQ(st.actual().tcp_data_split(), devmem::v1::TCP_DATA_SPLIT_ENABLED);
  EXPECT_EQ(st.actual().hds_thresh(), 0u);
  EXPECT_TRUE(st.actual().ntuple());
  ASSERT_EQ(st.actual().rss_indir_size(), 128);
  for (uint32_t q : st.actual().rss_indir()) EXPECT_LT(q, 6u);
  // The original was recorded (to disk) before the first change.
  EXPECT_EQ(st.original().tcp_data_split(), devmem::v1::TCP_DATA_SPLIT_UNKNOWN);
  EXPECT_EQ(st.original().hds_thresh(), 256u);
  EXPECT_FALSE(st.original().ntuple());
  std::ifstream record(st.record_path());
  ASSERT_TRUE(record.good()) << st.record_path();

  auto restored = m->Restore("sim0");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->state().state(), PROFILE_STATE_RESTORED);
  auto rings = sim_->GetRings(kIfindex);
  EXPECT_EQ(rings->tcp_data_split, TcpDataSplit::kUnknown);
  EXPECT_EQ(*rings->hds_thresh, 256u);
  EXPECT_FALSE(sim_->GetFeatures(kIfindex)->ntuple_active);
  // The default spread comes back as a reset, not as a user-written table.
  EXPECT_FALSE(sim_->GetCounters(kIfindex)->rss_configured);
  EXPECT_FALSE(std::ifstream(st.record_path()).good());
  // A second restore has nothing to do.
  EXPECT_EQ(m->Restore("sim0").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(NicManagerTest, NotCapableNicIsReportedAndUntouched) {
  sim_->FailNext(SimOp::kGetRings,
                 ErrnoStatus(EOPNOTSUPP, "ethtool rings-get sim0"));
  auto m = Make();
  const uint64_t before = Changes();
  m->ApplyAll();
  const devmem::v1::NicState st = State(*m);
  EXPECT_EQ(st.state(), PROFILE_STATE_NOT_CAPABLE);
  ASSERT_EQ(st.missing_size(), 1);
  EXPECT_EQ(st.missing(0).name(), "tcp_data_split");
  EXPECT_EQ(st.missing(0).errno_value(), EOPNOTSUPP);
  EXPECT_NE(st.reason().find("nothing was changed"), std::string::npos);
  EXPECT_EQ(Changes(), before);
  EXPECT_TRUE(st.record_path().empty());
  // Binding on it says why.
  auto b = m->BindRx(1, {"sim0", ""}, 1, Memfd());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("not devmem-capable"), std::string::npos)
      << b.status();
}

TEST_F(NicManagerTest, FailureMidwayRollsBack) {
  sim_->FailNext(SimOp::kSetRssIndir,
                 ErrnoStatus(EINVAL, "ethtool rss-set sim0", "injected"));
  auto m = Make();
  m->ApplyAll();
  const devmem::v1::NicState st = State(*m);
  EXPECT_EQ(st.state(), PROFILE_STATE_FAILED);
  EXPECT_NE(st.reason().find("keep the pool out of RSS"), std::string::npos)
      << st.reason();
  auto rings = sim_->GetRings(kIfindex);
  EXPECT_EQ(rings->tcp_data_split, TcpDataSplit::kUnknown);
  EXPECT_EQ(*rings->hds_thresh, 256u);
  EXPECT_FALSE(sim_->GetFeatures(kIfindex)->ntuple_active);
}

TEST_F(NicManagerTest, RecordLeftByEarlierRunIsTheOriginal) {
  // A crashed run recorded split UNKNOWN / hds 512 and left the NIC
  // changed; this run must restore the record, not what it finds.
  devmem::v1::NicSettings earlier;
  earlier.mutable_channels()->set_combined_count(8);
  earlier.set_tcp_data_split(devmem::v1::TCP_DATA_SPLIT_DISABLED);
  earlier.set_hds_thresh(512);
  earlier.set_ntuple(false);
  OriginalStateStore store(state_dir_);
  ASSERT_TRUE(store.Save("sim0", earlier).ok());
  auto m = Make();
  m->ApplyAll();
  ASSERT_EQ(State(*m).state(), PROFILE_STATE_APPLIED);
  EXPECT_EQ(State(*m).original().hds_thresh(), 512u);
  ASSERT_TRUE(m->Restore("sim0").ok());
  auto rings = sim_->GetRings(kIfindex);
  EXPECT_EQ(rings->tcp_data_split, TcpDataSplit::kDisabled);
  EXPECT_EQ(*rings->hds_thresh, 512u);
}

TEST_F(NicManagerTest, CorruptRecordRefusesToTouchTheNic) {
  const std::string dir = absl::StrCat(state_dir_, "/nics");
  ::mkdir(state_dir_.c_str(), 0750);
  ::mkdir(dir.c_str(), 0750);
  std::ofstream(absl::StrCat(dir, "/sim0.original.textproto")) << "garbage {";
  auto m = Make();
  const uint64_t before = Changes();
  m->ApplyAll();
  EXPECT_EQ(State(*m).state(), PROFILE_STATE_FAILED);
  EXPECT_EQ(Changes(), before);
}

TEST_F(NicManagerTest, BindChecksFdPoolAndQuota) {
  config_.set_max_bindings_per_session(2);
  auto m = Make();
  m->ApplyAll();
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd keep(p[1]);
  auto bad = m->BindRx(1, {"sim0", ""}, 1, UniqueFd(p[0]));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not a dma-buf"), std::string::npos)
      << bad.status();
  EXPECT_EQ(m->binding_count(), 0u);

  auto b1 = m->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(b1.ok()) << b1.status();
  EXPECT_EQ(b1->queues_size(), 1);
  EXPECT_EQ(b1->queues(0), 6u);
  EXPECT_GE(b1->kernel_id(), 1u);
  // The kernel-visible queue now carries the binding id.
  auto queues = sim_->GetQueues(kIfindex);
  ASSERT_TRUE(queues.ok());
  EXPECT_EQ((*queues)[6].dmabuf.value_or(0), b1->kernel_id());

  auto too_many = m->BindRx(2, {"sim0", ""}, 2, Memfd());
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(too_many.status().message().find("1 free of 2"), std::string::npos)
      << too_many.status();
  auto b2 = m->BindTx(1, {"sim0", ""}, Memfd());
  ASSERT_TRUE(b2.ok()) << b2.status();
  EXPECT_TRUE(b2->tx());
  auto quota = m->BindRx(1, {"sim0", ""}, 1, Memfd());
  EXPECT_EQ(quota.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(quota.status().message().find("max_bindings_per_session"),
            std::string::npos);

  // Unknown NIC and unmanaged NIC.
  EXPECT_EQ(m->BindRx(3, {"nope", ""}, 1, Memfd()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(m->BindRx(3, {"", ""}, 1, Memfd()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(NicManagerTest, KernelRefusalIsFailedPreconditionAndLeavesNothing) {
  auto m = Make();
  m->ApplyAll();
  sim_->FailNext(SimOp::kBindRx,
                 ErrnoStatus(EOPNOTSUPP, "netdev bind-rx sim0"));
  auto b = m->BindRx(1, {"sim0", ""}, 2, Memfd());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("queue-management"), std::string::npos)
      << b.status();
  EXPECT_EQ(State(*m).free_queues_size(), 2);
  EXPECT_EQ(m->binding_count(), 0u);
}

TEST_F(NicManagerTest, SimulatedKernelRuleIsEnforcedThroughTheManager) {
  auto m = Make();
  m->ApplyAll();
  // Someone turns header split off behind devmemd's back: bind-rx gets the
  // kernel's own text and a remedy.
  RingsSet off;
  off.tcp_data_split = TcpDataSplit::kDisabled;
  ASSERT_TRUE(sim_->SetRings(kIfindex, off).ok());
  auto b = m->BindRx(1, {"sim0", ""}, 1, Memfd());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("tcp-data-split is disabled"),
            std::string::npos)
      << b.status();
  EXPECT_NE(b.status().message().find("nic show"), std::string::npos);
}

TEST_F(NicManagerTest, SteeringIsIdempotentConflictsAndQuotas) {
  config_.set_max_rules_per_session(3);
  auto m = Make();
  m->ApplyAll();
  auto b = m->BindRx(1, {"sim0", ""}, 2, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  auto r1 = m->SteerFlow(1, b->handle(), TestTuple(40000, 5000));
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_TRUE(r1->five_tuple());
  EXPECT_EQ(r1->queue(), 6u);
  auto rule = sim_->GetRule(kIfindex, r1->location());
  ASSERT_TRUE(rule.ok()) << rule.status();
  EXPECT_EQ(rule->queue, 6u);
  EXPECT_EQ(rule->match, TestTuple(40000, 5000));
  // Same tuple, same binding: the same rule.
  auto again = m->SteerFlow(1, b->handle(), TestTuple(40000, 5000));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->location(), r1->location());
  EXPECT_EQ(m->rule_count(), 1u);
  // The next flow goes to the binding's other queue.
  auto r2 = m->SteerFlow(1, b->handle(), TestTuple(40001, 5000));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->queue(), 7u);
  // Another session's binding cannot take the same flow, nor use b.
  auto other = m->BindTx(2, {"sim0", ""}, Memfd());
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(m->SteerFlow(2, b->handle(), TestTuple(1, 2)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(m->SteerFlow(2, other->handle(), TestTuple(1, 2)).status().code(),
            absl::StatusCode::kFailedPrecondition);  // TX binding
  auto b3 = m->BindRx(3, {"sim0", ""}, 0, Memfd());
  EXPECT_EQ(b3.status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(m->ReleaseBinding(2, other->handle()).ok());

  // The NIC refuses the 5-tuple: the 3-tuple goes in instead.
  sim_->FailNext(SimOp::kInsertRule,
                 ErrnoStatus(EINVAL, "ethtool SRXCLSRLINS sim0"));
  auto r3 = m->SteerFlow(1, b->handle(), TestTuple(40002, 6000));
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_FALSE(r3->five_tuple());
  EXPECT_TRUE(r3->src_ip().empty());
  EXPECT_EQ(r3->dst_port(), 6000u);
  // Quota: 3 rules per session.
  auto r4 = m->SteerFlow(1, b->handle(), TestTuple(40003, 5000));
  EXPECT_EQ(r4.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r4.status().message().find("3 of 3"), std::string::npos)
      << r4.status();
  EXPECT_EQ(sim_->GetCounters(kIfindex)->rules, 3u);

  // Releasing the binding removes its rules and frees its queues.
  auto removed = m->ReleaseBinding(1, b->handle());
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 3u);
  EXPECT_EQ(sim_->GetCounters(kIfindex)->rules, 0u);
  EXPECT_EQ(sim_->LiveBindings(), 0u);
  EXPECT_EQ(State(*m).free_queues_size(), 2);
  EXPECT_EQ(m->ReleaseBinding(1, b->handle()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(NicManagerTest, ConflictingTupleIsAlreadyExists) {
  auto m = Make();
  m->ApplyAll();
  auto a = m->BindRx(1, {"sim0", ""}, 1, Memfd());
  auto b = m->BindRx(2, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(m->SteerFlow(1, a->handle(), TestTuple(1000, 2000)).ok());
  auto clash = m->SteerFlow(2, b->handle(), TestTuple(1000, 2000));
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
}

// SteerFlows: each flow succeeds or fails on its own, in order, with the
// same codes and metrics as SteerFlow, and one sequence number to wait for.
TEST_F(NicManagerTest, SteerFlowsAnswersEachFlowInOrder) {
  auto m = Make();
  m->ApplyAll();
  auto a = m->BindRx(1, {"sim0", ""}, 1, Memfd());
  auto b = m->BindRx(2, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(m->SteerFlow(2, b->handle(), TestTuple(1000, 2000)).ok());
  const std::vector<NicManager::FlowToSteer> flows = {
      {a->handle(), TestTuple(1001, 2000)},
      {a->handle(), TestTuple(1000, 2000)},  // binding b's tuple
      {9999, TestTuple(1002, 2000)},         // not a binding of session 1
      {a->handle(), TestTuple(1003, 2000)},
  };
  uint64_t durable_at = 0;
  auto rules = m->SteerFlows(1, flows, &durable_at);
  ASSERT_EQ(rules.size(), flows.size());
  ASSERT_TRUE(rules[0].ok()) << rules[0].status();
  EXPECT_EQ(rules[0]->src_port(), 1001u);
  EXPECT_EQ(rules[1].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(rules[2].status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(rules[3].ok()) << rules[3].status();
  EXPECT_EQ(rules[3]->src_port(), 1003u);
  EXPECT_NE(rules[0]->location(), rules[3]->location());
  EXPECT_EQ(sim_->GetCounters(kIfindex)->rules, 3u);
  EXPECT_TRUE(m->AwaitDurable(durable_at).ok());  // no journal here: at once
  EXPECT_EQ(m->Metrics()[0].rules_failed,
            (std::map<std::string, uint64_t>{{"conflict", 1}}));
}

TEST_F(NicManagerTest, SessionCloseReleasesEverythingAndRestoreWorks) {
  auto m = Make();
  m->ApplyAll();
  auto b = m->BindRx(1, {"sim0", ""}, 2, Memfd());
  ASSERT_TRUE(b.ok());
  for (uint16_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(m->SteerFlow(1, b->handle(), TestTuple(30000 + i, 5000)).ok());
  }
  m->ReleaseSession(1);
  EXPECT_EQ(sim_->GetCounters(kIfindex)->rules, 0u);
  EXPECT_EQ(sim_->LiveBindings(), 0u);
  EXPECT_EQ(m->binding_count(), 0u);

  // With a live binding, restore unbinds first (the kernel refuses split
  // off while bound) and then succeeds.
  auto again = m->BindRx(2, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(m->SteerFlow(2, again->handle(), TestTuple(1, 5000)).ok());
  auto restored = m->Restore("sim0");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->bindings_released(), 1u);
  EXPECT_EQ(restored->rules_removed(), 1u);
  EXPECT_EQ(sim_->LiveBindings(), 0u);
  EXPECT_EQ(sim_->GetRings(kIfindex)->tcp_data_split, TcpDataSplit::kUnknown);
  // After restore the NIC takes no bindings.
  EXPECT_EQ(m->BindRx(2, {"sim0", ""}, 1, Memfd()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(NicManagerTest, MetricsCountRulesByCauseAndQueuesByState) {
  config_.set_max_rules_per_session(2);
  auto m = Make();
  m->ApplyAll();
  auto metrics = m->Metrics();
  ASSERT_EQ(metrics.size(), 1u);
  EXPECT_EQ(metrics[0].nic, "sim0");
  EXPECT_EQ(metrics[0].state, PROFILE_STATE_APPLIED);
  EXPECT_EQ(metrics[0].queues_free, 2u);
  EXPECT_EQ(metrics[0].queues_used, 0u);

  auto a = m->BindRx(1, {"sim0", ""}, 1, Memfd());
  auto b = m->BindRx(2, {"sim0", ""}, 1, Memfd());
  auto t = m->BindTx(2, {"sim0", ""}, Memfd());
  ASSERT_TRUE(a.ok() && b.ok() && t.ok());
  ASSERT_TRUE(m->SteerFlow(1, a->handle(), TestTuple(1000, 2000)).ok());
  ASSERT_TRUE(m->SteerFlow(1, a->handle(), TestTuple(1001, 2000)).ok());
  // Refusals, one per cause the manager can tell apart.
  EXPECT_FALSE(m->SteerFlow(2, b->handle(), TestTuple(1000, 2000)).ok());
  EXPECT_FALSE(m->SteerFlow(1, a->handle(), TestTuple(1002, 2000)).ok());
  EXPECT_FALSE(m->SteerFlow(2, t->handle(), TestTuple(1003, 2000)).ok());
  sim_->FailNext(SimOp::kInsertRule,
                 ErrnoStatus(ENOSPC, "ethtool SRXCLSRLINS sim0"));
  EXPECT_FALSE(m->SteerFlow(2, b->handle(), TestTuple(1004, 2000)).ok());
  // An unknown binding names no NIC: not counted against one.
  EXPECT_FALSE(m->SteerFlow(2, 9999, TestTuple(1005, 2000)).ok());

  metrics = m->Metrics();
  const NicManager::NicMetrics& x = metrics[0];
  EXPECT_EQ(x.queues_free, 0u);
  EXPECT_EQ(x.queues_used, 2u);
  EXPECT_EQ(x.bindings_rx, 2u);
  EXPECT_EQ(x.bindings_tx, 1u);
  EXPECT_EQ(x.leases, 2u);
  EXPECT_EQ(x.rules, 2u);
  EXPECT_EQ(x.rules_installed, 2u);
  EXPECT_EQ(x.bound_rx_queues, (std::vector<uint32_t>{6, 7}));
  EXPECT_EQ(x.rules_failed,
            (std::map<std::string, uint64_t>{
                {"conflict", 1}, {"quota", 1}, {"invalid", 1}, {"kernel", 1}}));
  EXPECT_TRUE(x.rules_removed.empty());

  // Removed: one by the client's release, one by its session closing.
  auto r = m->SteerFlow(2, b->handle(), TestTuple(1006, 2000));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(m->ReleaseBinding(2, b->handle()).ok());
  m->ReleaseSession(1);
  metrics = m->Metrics();
  EXPECT_EQ(metrics[0].rules_installed, 3u);
  EXPECT_EQ(metrics[0].rules_removed,
            (std::map<std::string, uint64_t>{{"released", 1},
                                             {"session_closed", 2}}));
  EXPECT_EQ(metrics[0].leases, 1u) << "session 2 still holds its TX binding";
  EXPECT_EQ(metrics[0].queues_free, 2u);
  EXPECT_TRUE(metrics[0].bound_rx_queues.empty());
}

TEST_F(NicManagerTest, RssContextModeGivesEachBindingAContext) {
  config_.mutable_nic_profiles(0)->set_rss_mode(devmem::v1::RSS_MODE_CONTEXT);
  auto m = Make();
  m->ApplyAll();
  auto b = m->BindRx(1, {"sim0", ""}, 2, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(b->has_rss_context());
  auto ctx = sim_->GetRss(kIfindex, b->rss_context());
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  for (uint32_t q : ctx->indir) EXPECT_TRUE(q == 6 || q == 7) << q;
  auto r = m->SteerFlow(1, b->handle(), TestTuple(1, 2));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rss_context(), b->rss_context());
  ASSERT_TRUE(m->ReleaseBinding(1, b->handle()).ok());
  EXPECT_EQ(sim_->GetCounters(kIfindex)->rss_contexts, 0u);
}

TEST_F(NicManagerTest, RestoreAndStatesNameUnknownNics) {
  auto m = Make();
  m->ApplyAll();
  EXPECT_EQ(m->Restore("eth9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m->States({"eth9"}).status().code(), absl::StatusCode::kNotFound);
}

TEST(KernelRefusalTest, MapsErrnosAndKeepsOwnErrors) {
  EXPECT_EQ(KernelRefusal(ErrnoStatus(ENOSPC, "x"), "r").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(KernelRefusal(ErrnoStatus(ENODEV, "x"), "r").code(),
            absl::StatusCode::kNotFound);
  const absl::Status s = KernelRefusal(
      ErrnoStatus(EINVAL, "netdev bind-rx eth1", "tcp-data-split is disabled"),
      "remedy here");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("tcp-data-split is disabled"), std::string::npos);
  EXPECT_NE(s.message().find("remedy here"), std::string::npos);
  const absl::Status own = absl::InvalidArgumentError("mine");
  EXPECT_EQ(KernelRefusal(own, "r"), own);
}

}  // namespace
}  // namespace devmem

namespace devmem {
namespace {

// GPU-to-NIC choice on a fake PCI tree: the NIC behind the GPU's own PCIe
// switch (PIX) beats one across the sockets (SYS); between equals, the one
// with more free pool queues wins.
TEST(NicManagerGpuTest, PicksTheNearestNicThenTheFreest) {
  FakePci pci;
  const std::string gpu = "0000:13:00.0";
  pci.Add({"pci0000:10", "0000:10:01.0", "0000:11:00.0", "0000:12:00.0", gpu},
          0x030200, 0, "nvidia");
  pci.Add({"pci0000:10", "0000:10:01.0", "0000:11:00.0", "0000:12:01.0",
           "0000:14:00.0"},
          0x020000, 0);
  pci.Add({"pci0000:90", "0000:90:01.0", "0000:91:00.0"}, 0x020000, 1);
  pci.Add({"pci0000:90", "0000:90:02.0", "0000:92:00.0"}, 0x020000, 1);
  PciTopology topology(pci.root());
  devmem::v1::DaemonConfig config;
  config.set_state_dir(absl::StrCat(std::getenv("TEST_TMPDIR"), "/gpu"));
  for (const char* name : {"far0", "near0", "far1"}) {
    auto* p = config.add_nic_profiles();
    p->set_nic(name);
    p->set_pool_queues(2);
  }
  ASSERT_TRUE(FinalizeConfig(&config, "test").ok());
  std::vector<SimulatedNicSpec> specs;
  std::vector<NicInfo> infos;
  const std::pair<const char*, const char*> nics[] = {{"far0", "0000:91:00.0"},
                                                      {"near0", "0000:14:00.0"},
                                                      {"far1", "0000:92:00.0"}};
  uint32_t ifindex = 11;
  for (const auto& [name, addr] : nics) {
    SimulatedNicSpec spec;
    spec.name = name;
    spec.ifindex = ifindex;
    specs.push_back(spec);
    NicInfo info;
    info.link.name = name;
    info.link.ifindex = ifindex++;
    info.link.pci_address = addr;
    infos.push_back(info);
  }
  auto sim = SimulatedNic::Create(specs);
  ASSERT_TRUE(sim.ok());
  FakeNicInventory inventory(infos);
  NicManager::Options o;
  o.config = &config;
  o.control = sim->get();
  o.inventory = &inventory;
  o.topology = &topology;
  NicManager m(o);
  m.ApplyAll();
  auto bound = m.BindRx(1, {"", gpu}, 2, Memfd());
  ASSERT_TRUE(bound.ok()) << bound.status();
  EXPECT_EQ(bound->nic(), "near0");
  // near0 is full now: of the two SYS NICs, the one with more free queues.
  auto busy = m.BindRx(2, {"far0", ""}, 1, Memfd());
  ASSERT_TRUE(busy.ok());
  auto next = m.BindRx(3, {"", gpu}, 1, Memfd());
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->nic(), "far1");
}

TEST(NicManagerGpuTest, BadGpuAddressesAreRefused) {
  FakePci pci;
  PciTopology topology(pci.root());
  devmem::v1::DaemonConfig config;
  config.set_state_dir(absl::StrCat(std::getenv("TEST_TMPDIR"), "/gpu2"));
  config.add_nic_profiles()->set_nic("near0");
  ASSERT_TRUE(FinalizeConfig(&config, "test").ok());
  SimulatedNicSpec spec;
  spec.name = "near0";
  spec.ifindex = 12;
  auto sim = SimulatedNic::Create({spec});
  ASSERT_TRUE(sim.ok());
  NicInfo info;
  info.link.name = "near0";
  info.link.ifindex = 12;
  FakeNicInventory inventory({info});
  NicManager::Options o;
  o.config = &config;
  o.control = sim->get();
  o.inventory = &inventory;
  o.topology = &topology;
  NicManager m(o);
  m.ApplyAll();
  EXPECT_EQ(m.BindRx(1, {"", "0000:ff:1f.7"}, 1, Memfd()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(m.BindRx(1, {"", "../../etc"}, 1, Memfd()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.BindRx(1, {"near0", "0000:13:00.0"}, 1, Memfd()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(NicManagerTest, ChangesBySomeoneElseMarkLeasesDegraded) {
  auto m = Make();
  m->ApplyAll();
  ASSERT_EQ(State(*m).state(), PROFILE_STATE_APPLIED);
  auto b = m->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(m->CheckHealth().empty());
  // Someone else grows the channels (ethtool -L behind devmemd's back).
  ChannelsSet grow;
  grow.combined_count = 10;
  ASSERT_TRUE(sim_->SetChannels(kIfindex, grow).ok());
  auto degraded = m->CheckHealth();
  ASSERT_EQ(degraded.size(), 1u);
  EXPECT_NE(degraded[0].find("sim0: channels changed by someone else "
                             "(combined 10"),
            std::string::npos)
      << degraded[0];
  EXPECT_NE(degraded[0].find("1 binding(s) degraded"), std::string::npos);
  EXPECT_NE(State(*m).degraded(), "");
  // The lease itself keeps working; putting the channels back heals it.
  grow.combined_count = 8;
  ASSERT_TRUE(sim_->SetChannels(kIfindex, grow).ok());
  EXPECT_TRUE(m->CheckHealth().empty());
  EXPECT_EQ(State(*m).degraded(), "");
}

TEST_F(NicManagerTest, PerUidQuotasSpanSessions) {
  config_.set_max_bindings_per_uid(2);
  config_.set_max_rules_per_uid(1);
  NicManager::Options o;
  o.config = &config_;
  o.control = sim_.get();
  o.inventory = inventory_.get();
  // Sessions 1 and 2 belong to uid 1000, session 3 to uid 2000.
  o.session_record = [](uint64_t id) {
    devmem::v1::JournaledSession rec;
    rec.set_id(id);
    rec.set_uid(id == 3 ? 2000 : 1000);
    return std::optional<devmem::v1::JournaledSession>(rec);
  };
  config_.mutable_nic_profiles(0)->set_pool_queues(4);
  NicManager m(o);
  m.ApplyAll();
  ASSERT_TRUE(m.BindRx(1, {"sim0", ""}, 1, Memfd()).ok());
  auto b2 = m.BindRx(2, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(b2.ok());
  auto b3 = m.BindRx(2, {"sim0", ""}, 1, Memfd());
  EXPECT_EQ(b3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(b3.status().message()).find("max_bindings_per_uid"),
            std::string::npos)
      << b3.status();
  auto other = m.BindRx(3, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(other.ok()) << "uid 2000 is starved by uid 1000";
  ASSERT_TRUE(m.SteerFlow(2, b2->handle(), TestTuple(1000, 2000)).ok());
  auto r2 = m.SteerFlow(1, 1, TestTuple(1001, 2001));
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(r2.status().message()).find("max_rules_per_uid"),
            std::string::npos);
  EXPECT_TRUE(m.SteerFlow(3, other->handle(), TestTuple(1002, 2002)).ok());
}

}  // namespace
}  // namespace devmem
