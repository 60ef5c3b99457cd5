#include "daemon/nic/restorer.h"

#include <string>

#include "daemon/nic/testing/nic_parts.h"
#include "daemon/nic/testing/test_tuple.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

using RestorerTest = NicPartsTest;

TEST_F(RestorerTest, ReleasesEverythingThenPutsTheSettingsBack) {
  auto b = binder_->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  NicRecord* nic = nullptr;
  const char* cause = nullptr;
  uint64_t seq = 0;
  ASSERT_TRUE(
      steering_->Steer(1, b->handle(), TestTuple(1, 2), &nic, &cause, &seq)
          .ok());
  EXPECT_EQ(restorer_->State(Sim0Record()).bindings(), 1u);
  EXPECT_EQ(restorer_->State(Sim0Record()).rules(), 1u);

  auto resp = restorer_->Restore("sim0");
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->bindings_released(), 1u);
  EXPECT_EQ(resp->rules_removed(), 1u);
  EXPECT_EQ(resp->state().state(), devmem::v1::PROFILE_STATE_RESTORED);
  EXPECT_EQ(resp->state().bindings(), 0u);
  EXPECT_EQ(Counters().rx_bindings, 0u);
  EXPECT_EQ(Counters().rules, 0u);
  EXPECT_EQ(sim_->GetRings(kIfindex)->tcp_data_split, TcpDataSplit::kUnknown);
  EXPECT_EQ(Sim0Record().rules_removed[rule_cause::kRestore], 1u);
  EXPECT_TRUE(journal_->state().bindings().empty());
  // Nothing is recorded any more: a second restore has nothing to do.
  auto again = restorer_->Restore("sim0");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), HasSubstr("nothing to restore"));
  EXPECT_TRUE(restorer_->RestoreAll().empty());
}

TEST_F(RestorerTest, ReservedQueuesChangeNothing) {
  ASSERT_TRUE(Sim0Record().pool.Reserve("r-1", 1, {}, "sim0").ok());
  auto resp = restorer_->Restore("sim0");
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(resp.status().message(),
              HasSubstr("1 queue(s) are reserved for jobs"));
  EXPECT_EQ(Sim0Record().state, devmem::v1::PROFILE_STATE_APPLIED);
  Sim0Record().pool.Unreserve("r-1");
  EXPECT_TRUE(restorer_->Restore("sim0").ok());
}

TEST_F(RestorerTest, UnknownNicNamesTheProfiles) {
  auto resp = restorer_->Restore("eth9");
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(resp.status().message(),
              HasSubstr("no NIC profile for \"eth9\"; profiles: sim0"));
}

TEST_F(RestorerTest, AnchorInAWorkloadsHandsChangesNothing) {
  auto b = binder_->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  handed_out_.insert(b->handle());
  auto resp = restorer_->Restore("sim0");
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(resp.status().message(), HasSubstr("held by workloads"));
  EXPECT_EQ(Counters().rx_bindings, 1u);
  EXPECT_EQ(leases_->bindings().size(), 1u);
  EXPECT_EQ(Sim0Record().state, devmem::v1::PROFILE_STATE_APPLIED);
}

TEST_F(RestorerTest, QueueStillBoundKeepsTheProfileApplied) {
  auto b = binder_->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  // A copy of the anchor the workload kept after its binding was released.
  auto kept = binder_->DupAnchor(1, b->handle());
  ASSERT_TRUE(kept.ok()) << kept.status();
  auto resp = restorer_->Restore("sim0");
  EXPECT_EQ(resp.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(resp.status().message(),
              HasSubstr("queue(s) 6 are still bound in the kernel"));
  EXPECT_EQ(Sim0Record().state, devmem::v1::PROFILE_STATE_APPLIED);
  EXPECT_EQ(sim_->GetRings(kIfindex)->tcp_data_split, TcpDataSplit::kEnabled);
  EXPECT_TRUE(leases_->bindings().empty());

  kept->Reset();
  auto lines = restorer_->RestoreAll();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(Sim0Record().state, devmem::v1::PROFILE_STATE_RESTORED) << lines[0];
}

}  // namespace
}  // namespace devmem
