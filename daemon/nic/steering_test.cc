#include "daemon/nic/steering.h"

#include <cerrno>
#include <string>

#include "daemon/nic/testing/nic_parts.h"
#include "daemon/nic/testing/test_tuple.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

class SteeringTest : public NicPartsTest {
 protected:
  // Queues 4 to 7: two for rx_, the rest for other bindings.
  SteeringTest() : NicPartsTest(4) {}

  void SetUp() override {
    NicPartsTest::SetUp();
    auto b = binder_->BindRx(1, {"sim0", ""}, 2, Memfd());
    ASSERT_TRUE(b.ok()) << b.status();
    rx_ = b->handle();
  }

  absl::StatusOr<devmem::v1::FlowRule> Steer(uint64_t session, uint64_t handle,
                                             const FlowTuple& tuple) {
    NicRecord* nic = nullptr;
    cause_ = nullptr;
    uint64_t seq = 0;
    return steering_->Steer(session, handle, tuple, &nic, &cause_, &seq);
  }

  uint64_t rx_ = 0;
  const char* cause_ = nullptr;
};

TEST_F(SteeringTest, InstallsJournalsSpreadsOverQueuesAndIsIdempotent) {
  auto r1 = Steer(1, rx_, TestTuple(40000, 5000));
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_TRUE(r1->five_tuple());
  EXPECT_EQ(r1->nic(), "sim0");
  EXPECT_EQ(r1->binding(), rx_);
  EXPECT_EQ(Counters().rules, 1u);
  auto on_nic = sim_->GetRule(kIfindex, r1->location());
  ASSERT_TRUE(on_nic.ok()) << on_nic.status();
  EXPECT_EQ(on_nic->queue, r1->queue());
  EXPECT_EQ(journal_->state().rules_size(), 1);
  EXPECT_EQ(Sim0Record().rules_installed, 1u);

  // The same tuple for the same binding: the same rule, nothing new.
  auto again = Steer(1, rx_, TestTuple(40000, 5000));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->location(), r1->location());
  EXPECT_EQ(Counters().rules, 1u);
  // The next flow goes to the binding's other queue.
  auto r2 = Steer(1, rx_, TestTuple(40001, 5000));
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_NE(r2->queue(), r1->queue());

  ASSERT_TRUE(steering_->Remove(1, rx_, r1->location()).ok());
  EXPECT_EQ(Counters().rules, 1u);
  EXPECT_EQ(journal_->state().rules_size(), 1);
  EXPECT_EQ(steering_->Remove(1, rx_, r1->location()).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SteeringTest, FiveTupleRefusalFallsBackToDestinationOnly) {
  sim_->FailNext(SimOp::kInsertRule, ErrnoStatus(EOPNOTSUPP, "rule sim0"));
  auto r = Steer(1, rx_, TestTuple(40000, 5000));
  ASSERT_TRUE(r.ok()) << r.status();
  auto on_nic = sim_->GetRule(kIfindex, r->location());
  ASSERT_TRUE(on_nic.ok());
  EXPECT_TRUE(on_nic->match.src_ip.empty());
  EXPECT_EQ(on_nic->match.src_port, 0);
  EXPECT_EQ(on_nic->match.dst_port, 5000);
}

TEST_F(SteeringTest, RefusalsSayWhyAndLeaveNoRule) {
  auto other = binder_->BindTx(2, {"sim0", ""}, Memfd());
  ASSERT_TRUE(other.ok()) << other.status();
  // Another session's binding is not found, the same as an unknown one.
  EXPECT_EQ(Steer(2, rx_, TestTuple(1, 2)).status().code(),
            absl::StatusCode::kNotFound);
  auto tx = Steer(2, other->handle(), TestTuple(1, 2));
  EXPECT_EQ(tx.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(tx.status().message(), HasSubstr("TX binding"));
  EXPECT_EQ(Steer(1, rx_, TestTuple(1, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_STREQ(cause_, rule_cause::kInvalid);

  ASSERT_TRUE(Steer(1, rx_, TestTuple(7, 8)).ok());
  auto second = binder_->BindRx(2, {"sim0", ""}, 0, Memfd());
  ASSERT_TRUE(second.ok()) << second.status();
  auto taken = Steer(2, second->handle(), TestTuple(7, 8));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_STREQ(cause_, rule_cause::kConflict);

  sim_->FailNext(SimOp::kInsertRule, ErrnoStatus(EBUSY, "rule sim0"));
  auto busy = Steer(1, rx_, TestTuple(9, 10));
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(busy.status().message(), HasSubstr("ntuple must be on"));
  EXPECT_STREQ(cause_, rule_cause::kKernel);
  EXPECT_EQ(Counters().rules, 1u);
  EXPECT_EQ(journal_->state().rules_size(), 1);
}

}  // namespace
}  // namespace devmem
