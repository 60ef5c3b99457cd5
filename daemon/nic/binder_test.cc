#include "daemon/nic/binder.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "daemon/nic/testing/nic_parts.h"
#include "daemon/nic/testing/test_tuple.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using BinderTest = NicPartsTest;

TEST_F(BinderTest, BindRxTakesPoolQueuesJournalsAndReleaseGivesThemBack) {
  auto b = binder_->BindRx(1, {"sim0", ""}, 2, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(b->queues(), ElementsAre(6, 7));
  EXPECT_EQ(Sim0Record().pool.free_count(), 0u);
  EXPECT_EQ(Counters().rx_bindings, 1u);
  EXPECT_THAT(leases_->BindingsOf(1), ElementsAre(b->handle()));
  ASSERT_TRUE(journal_->state().bindings().contains(b->handle()));
  EXPECT_TRUE(journal_->state().sessions().contains(1));
  // The anchor the journal names is the one the binder holds.
  auto anchor = binder_->DupAnchor(1, b->handle());
  ASSERT_TRUE(anchor.ok()) << anchor.status();
  auto id = IdentifyFd(anchor->get_unowned());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(journal_->state().bindings().at(b->handle()).anchor_inode(),
            id->ino);
  anchor->Reset();

  EXPECT_EQ(binder_->Release(b->handle(), rule_cause::kReleased), 0u);
  EXPECT_EQ(Sim0Record().pool.free_count(), 2u);
  EXPECT_EQ(Counters().rx_bindings, 0u);
  EXPECT_THAT(leases_->BindingsOf(1), IsEmpty());
  EXPECT_TRUE(journal_->state().bindings().empty());
  EXPECT_EQ(withdrawn_[b->handle()], 1);
}

TEST_F(BinderTest, AQueueAKeptAnchorStillBindsIsNotTakenAgain) {
  auto first = binder_->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_THAT(first->queues(), ElementsAre(6));
  // The workload keeps a copy of the anchor after the binding is released:
  // queue 6 is free for devmemd but still bound in the kernel.
  auto kept = binder_->DupAnchor(1, first->handle());
  ASSERT_TRUE(kept.ok()) << kept.status();
  binder_->Release(first->handle(), rule_cause::kReleased);
  EXPECT_TRUE(Sim0Record().pool.has_unchecked());
  auto second = binder_->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(second->queues(), ElementsAre(7));
  EXPECT_TRUE(Sim0Record().pool.has_unchecked()) << "6 is still bound";
  // Once the workload lets go, 6 is taken again.
  kept->Reset();
  auto third = binder_->BindRx(2, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_THAT(third->queues(), ElementsAre(6));
  EXPECT_FALSE(Sim0Record().pool.has_unchecked());
}

TEST_F(BinderTest, RefusalsLeaveThePoolTheLeasesAndTheJournalAsTheyWere) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  ::close(p[1]);
  auto pipe = binder_->BindRx(1, {"sim0", ""}, 1, UniqueFd(p[0]));
  EXPECT_EQ(pipe.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pipe.status().message(), HasSubstr("pipe"));
  EXPECT_EQ(binder_->BindRx(1, {"sim0", ""}, 65, Memfd()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(binder_->BindRx(1, {"sim0", ""}, 3, Memfd()).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(binder_->BindRx(1, {"nope", ""}, 1, Memfd()).status().code(),
            absl::StatusCode::kNotFound);
  sim_->FailNext(SimOp::kBindRx, ErrnoStatus(EBUSY, "bind-rx sim0"));
  auto busy = binder_->BindRx(1, {"sim0", ""}, 1, Memfd());
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(busy.status().message(), HasSubstr("bind-rx sim0"));

  EXPECT_EQ(Sim0Record().pool.free_count(), 2u);
  EXPECT_TRUE(leases_->bindings().empty());
  EXPECT_TRUE(journal_->state().bindings().empty());
  EXPECT_EQ(Counters().rx_bindings, 0u);
}

TEST_F(BinderTest, ReleaseSessionEndsEveryBindingAndItsRules) {
  auto rx = binder_->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(rx.ok()) << rx.status();
  auto tx = binder_->BindTx(1, {"sim0", ""}, Memfd());
  ASSERT_TRUE(tx.ok()) << tx.status();
  auto other = binder_->BindRx(2, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(other.ok()) << other.status();
  NicRecord* nic = nullptr;
  const char* cause = nullptr;
  uint64_t seq = 0;
  ASSERT_TRUE(
      steering_
          ->Steer(1, rx->handle(), TestTuple(40000, 5000), &nic, &cause, &seq)
          .ok());
  EXPECT_EQ(Counters().rules, 1u);

  binder_->ReleaseSession(1, rule_cause::kSessionClosed);
  EXPECT_EQ(Counters().rules, 0u);
  EXPECT_EQ(Counters().tx_bindings, 0u);
  EXPECT_EQ(Counters().rx_bindings, 1u);  // session 2's
  EXPECT_THAT(leases_->BindingsOf(1), IsEmpty());
  EXPECT_THAT(leases_->BindingsOf(2), ElementsAre(other->handle()));
  EXPECT_FALSE(journal_->state().sessions().contains(1));
  EXPECT_EQ(Sim0Record().rules_removed[rule_cause::kSessionClosed], 1u);
  binder_->ReleaseSession(1, rule_cause::kSessionClosed);  // idempotent
  EXPECT_EQ(Counters().rx_bindings, 1u);
}

TEST_F(BinderTest, HeldAnchorsAreNamedWithTheirOwner) {
  auto b = binder_->BindRx(3, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(binder_->CheckNoHeldAnchors(Sim0Record()).ok());
  handed_out_.insert(b->handle());
  absl::Status held = binder_->CheckNoHeldAnchors(Sim0Record());
  EXPECT_EQ(held.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(held.message(),
              HasSubstr(absl::StrCat("binding ", b->handle(),
                                     " (session 3, uid 1003, pid 4003)")));
}

TEST_F(BinderTest, ReturnAnchorTakesOnlyTheBindingsOwnAnchor) {
  auto b = binder_->BindRx(1, {"sim0", ""}, 1, Memfd());
  ASSERT_TRUE(b.ok()) << b.status();
  auto anchor = binder_->DupAnchor(1, b->handle());
  ASSERT_TRUE(anchor.ok()) << anchor.status();
  auto wrong = binder_->ReturnAnchor(1, b->handle(), Memfd());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      wrong.status().message(),
      HasSubstr(absl::StrCat("not the anchor of binding ", b->handle())));
  EXPECT_EQ(binder_->ReturnAnchor(2, b->handle(), Memfd()).status().code(),
            absl::StatusCode::kNotFound);
  auto id = binder_->ReturnAnchor(1, b->handle(), *std::move(anchor));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, b->kernel_id());
}

TEST(KernelRefusalTest, MapsErrnoToTheCodeDevmemdReports) {
  EXPECT_EQ(KernelRefusal(ErrnoStatus(ENOSPC, "x"), "r").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(KernelRefusal(ErrnoStatus(ENODEV, "x"), "r").code(),
            absl::StatusCode::kNotFound);
  absl::Status busy = KernelRefusal(ErrnoStatus(EBUSY, "bind-rx"), "do this");
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(busy.message(), HasSubstr("bind-rx"));
  EXPECT_THAT(busy.message(), HasSubstr("do this"));
  // devmemd's own checks (no errno) pass through unchanged.
  const absl::Status own = absl::InvalidArgumentError("bad");
  EXPECT_EQ(KernelRefusal(own, "r"), own);
}

}  // namespace
}  // namespace devmem
