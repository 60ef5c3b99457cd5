// LeaseRecovery on its own: a hand-made journal state against a simulated
// NIC whose kernel side the test arranges. (nic_recovery_test runs the same
// code through NicManager after a real "crash".)
#include "daemon/nic/recovery.h"

#include <sys/socket.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/nic/testing/sim0.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/testing/fake_nic_inventory.h"

namespace devmem {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

constexpr uint32_t kIfindex = 9;

FlowRule ToQueue(uint16_t port, uint32_t queue) {
  FlowRule r;
  r.match.family = AF_INET;
  r.match.dst_ip = "10.0.0.1";
  r.match.dst_port = port;
  r.queue = queue;
  return r;
}

class LeaseRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = Sim0Config(TestDir());  // pool: queues 6 and 7 of 8
    sim_ = Sim0(kIfindex);
    ASSERT_NE(sim_, nullptr);
    inventory_ = Sim0Inventory(kIfindex);
    profiles_ = std::make_unique<NicProfiles>(NicProfiles::Options{
        &config_, sim_.get(), inventory_.get(), &recorder_});
    profiles_->Apply(*profiles_->Find("sim0"));
  }

  std::vector<std::string> Run(const devmem::v1::JournalState& state,
                               std::vector<devmem::v1::JournaledSession>* d) {
    LeaseRecovery recovery(*profiles_, leases_, *sim_, recorder_, "recovery");
    return recovery.Run(state, {}, d);
  }

  devmem::v1::DaemonConfig config_;
  std::unique_ptr<SimulatedNic> sim_;
  std::unique_ptr<FakeNicInventory> inventory_;
  ChangeRecorder recorder_{nullptr};
  std::unique_ptr<NicProfiles> profiles_;
  LeaseTable leases_{LeaseTable::Quotas()};
};

TEST_F(LeaseRecoveryTest, RecordsTheKernelDoesNotBackAreDropped) {
  devmem::v1::JournalState state;
  state.set_next_id(50);
  (*state.mutable_sessions())[1].set_id(1);
  auto& unfinished = (*state.mutable_bindings())[3];
  unfinished.set_handle(3);
  unfinished.set_session(1);
  unfinished.set_nic("sim0");
  unfinished.set_made(false);
  auto& gone = (*state.mutable_bindings())[4];
  gone = unfinished;
  gone.set_handle(4);
  gone.set_made(true);
  gone.set_kernel_id(77);  // no queue shows it
  auto& elsewhere = (*state.mutable_bindings())[5];
  elsewhere = gone;
  elsewhere.set_handle(5);
  elsewhere.set_nic("eth9");
  std::vector<devmem::v1::JournaledSession> detached;
  const std::vector<std::string> report = Run(state, &detached);
  EXPECT_THAT(report, Contains(HasSubstr("binding 3 on sim0: dropped (the "
                                         "bind never completed)")));
  EXPECT_THAT(report, Contains(HasSubstr("the kernel no longer has binding "
                                         "77")));
  EXPECT_THAT(report, Contains(HasSubstr("its NIC is not applied now")));
  EXPECT_THAT(report.back(), HasSubstr("recovery: 0 binding(s) kept"));
  EXPECT_TRUE(leases_.bindings().empty());
  EXPECT_TRUE(detached.empty());  // its session holds nothing now
  EXPECT_EQ(leases_.NextId(), 50u);
}

TEST_F(LeaseRecoveryTest, UnfinishedAndOrphanRulesGoForeignRulesStay) {
  // An unfinished insert the kernel did make, an orphan to a pool queue, a
  // rule someone else made to a queue outside the pool.
  auto unfinished_loc = sim_->InsertRule(kIfindex, ToQueue(5001, 6));
  auto orphan_loc = sim_->InsertRule(kIfindex, ToQueue(5002, 7));
  auto foreign_loc = sim_->InsertRule(kIfindex, ToQueue(5003, 1));
  ASSERT_TRUE(unfinished_loc.ok() && orphan_loc.ok() && foreign_loc.ok());
  devmem::v1::JournalState state;
  auto& rec = (*state.mutable_rules())[8];
  rec.set_id(8);
  rec.set_nic("sim0");
  rec.set_installed(false);
  TupleToRecord(ToQueue(5001, 6).match, rec.mutable_requested());
  TupleToRecord(ToQueue(5001, 6).match, rec.mutable_match());
  rec.set_queue(6);
  const std::vector<std::string> report = Run(state, nullptr);
  EXPECT_THAT(report, Contains(HasSubstr(absl::StrCat(
                          "sim0: removed orphan rule at ", *orphan_loc,
                          " (steered to devmem pool queue 7"))));
  EXPECT_THAT(report.back(), HasSubstr("1 unfinished rule(s) removed, 1 "
                                       "orphan rule(s) removed"));
  EXPECT_FALSE(sim_->GetRule(kIfindex, *unfinished_loc).ok());
  EXPECT_FALSE(sim_->GetRule(kIfindex, *orphan_loc).ok());
  EXPECT_TRUE(sim_->GetRule(kIfindex, *foreign_loc).ok());
  EXPECT_EQ(profiles_->Find("sim0")->rules_removed["recovery"], 2u);
}

TEST_F(LeaseRecoveryTest, AStaleRuleRecordIsDroppedAndTheKernelRuleKept) {
  // The record says queue 6 at this location; the kernel has queue 1 there.
  auto loc = sim_->InsertRule(kIfindex, ToQueue(5004, 1));
  ASSERT_TRUE(loc.ok());
  devmem::v1::JournalState state;
  auto& rec = (*state.mutable_rules())[9];
  rec.set_id(9);
  rec.set_nic("sim0");
  rec.set_installed(true);
  rec.set_location(*loc);
  TupleToRecord(ToQueue(5004, 6).match, rec.mutable_requested());
  TupleToRecord(ToQueue(5004, 6).match, rec.mutable_match());
  rec.set_queue(6);
  const std::vector<std::string> report = Run(state, nullptr);
  EXPECT_THAT(report.back(), HasSubstr("1 stale record(s) dropped"));
  EXPECT_TRUE(sim_->GetRule(kIfindex, *loc).ok());
  EXPECT_EQ(leases_.RuleCount(), 0u);
}

}  // namespace
}  // namespace devmem
