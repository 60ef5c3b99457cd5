#include "daemon/nic/steering.h"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "daemon/nic/testing/nic_parts.h"
#include "daemon/nic/testing/test_tuple.h"
#include "daemon/state/journal.h"
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

// What a batch does: rules made with start_flush false. The journal file
// holds nothing of them until the wait, and then one record per rule, the
// one with its location (no intent before the insert: an unclaimed rule on
// the pool is an orphan at recovery).
TEST_F(SteeringTest, EachRuleIsOneStagedRecordWrittenByTheWait) {
  const uint64_t before = journal_->size_bytes();
  NicRecord* nic = nullptr;
  std::vector<uint32_t> locations;
  uint64_t last = 0;
  for (uint16_t port = 41000; port < 41003; ++port) {
    uint64_t seq = 0;
    auto r = steering_->Steer(1, rx_, TestTuple(port, 5000), &nic, &cause_,
                              &seq, /*start_flush=*/false);
    ASSERT_TRUE(r.ok()) << r.status();
    locations.push_back(r->location());
    last = std::max(last, seq);
  }
  EXPECT_EQ(journal_->size_bytes(), before) << "a rule was written alone";
  ASSERT_TRUE(recorder_->AwaitDurable(last).ok());
  std::ifstream in(journal_->path(), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  const JournalScan scan = ScanJournal(bytes.substr(before));
  ASSERT_EQ(scan.records.size(), 3u);
  for (size_t i = 0; i < scan.records.size(); ++i) {
    devmem::v1::JournalEntry e;
    ASSERT_TRUE(e.ParseFromString(scan.records[i]));
    ASSERT_TRUE(e.has_rule_put()) << e.DebugString();
    EXPECT_TRUE(e.rule_put().installed());
    EXPECT_EQ(e.rule_put().location(), locations[i]);
  }
}

TEST_F(SteeringTest, AFailedGroupWriteFailsTheWaitOfEveryRuleInIt) {
  NicRecord* nic = nullptr;
  std::vector<uint64_t> seqs;
  for (uint16_t port = 42000; port < 42003; ++port) {
    uint64_t seq = 0;
    ASSERT_TRUE(steering_
                    ->Steer(1, rx_, TestTuple(port, 5000), &nic, &cause_, &seq,
                            /*start_flush=*/false)
                    .ok());
    seqs.push_back(seq);
  }
  journal_->InjectWriteFailureForTest(ENOSPC);
  for (uint64_t seq : seqs) {
    const absl::Status s = recorder_->AwaitDurable(seq);
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_THAT(s.message(), HasSubstr("it was undone"));
  }
  EXPECT_THAT(journal_->error(), HasSubstr("No space left"));
}

}  // namespace
}  // namespace devmem
