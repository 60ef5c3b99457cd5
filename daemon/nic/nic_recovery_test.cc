// NicManager::Recover against a simulated NIC whose state outlives the
// manager (a state_dir), as hardware outlives devmemd: a "crash" is dropping
// the NicManager without restoring anything, and the journal of that run is
// what the next manager reconciles with what the NIC reports.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/nic/testing/sim0_host.h"
#include "daemon/nic/testing/test_tuple.h"
#include "daemon/state/lease_journal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/fd_identity.h"
#include "kernel/testing/fake_nic_inventory.h"

namespace devmem {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

class NicRecoveryTest : public Sim0Host {
 protected:
  // Pool: queues 6 and 7 of 8; every session is uid 1000's.
  void SetUp() override { SetUpHost(/*pool_queues=*/2, /*one_uid=*/true); }

  std::vector<std::string> Recover(
      std::vector<devmem::v1::JournaledSession>* detached = nullptr) {
    return manager_->Recover(journal_->state(), {}, detached);
  }

  uint32_t NicRules() { return sim_->GetCounters(kIfindex)->rules; }
};

TEST_F(NicRecoveryTest, HeldBindingIsReadoptedWithItsAnchorAndRules) {
  UniqueFd mem(memfd_create("rec", MFD_CLOEXEC));
  auto b = manager_->BindRx(1, {"sim0", ""}, 1, std::move(mem));
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(manager_->SteerFlow(1, b->handle(), TestTuple(1, 2)).ok());
  auto anchor = manager_->DupAnchor(1, b->handle());  // the workload's copy
  ASSERT_TRUE(anchor.ok()) << anchor.status();

  Boot();  // crash: nothing released, nothing restored
  std::vector<devmem::v1::JournaledSession> detached;
  auto report = Recover(&detached);
  ASSERT_EQ(detached.size(), 1u);
  EXPECT_EQ(detached[0].token(), "token1");
  EXPECT_THAT(report.back(), HasSubstr("1 binding(s) kept (0 re-adopted from "
                                       "the fd store, 1 awaiting"));
  EXPECT_THAT(report.back(), HasSubstr("1 rule(s) confirmed"));
  EXPECT_EQ(manager_->AwaitingAnchor(1), std::vector<uint64_t>({b->handle()}));
  // Another fd is not this binding's anchor.
  UniqueFd other(memfd_create("x", MFD_CLOEXEC));
  EXPECT_EQ(
      manager_->ReturnAnchor(1, b->handle(), std::move(other)).status().code(),
      absl::StatusCode::kInvalidArgument);
  // Another session cannot claim it.
  UniqueFd dup(fcntl(anchor->get_unowned(), F_DUPFD_CLOEXEC, 3));
  EXPECT_EQ(
      manager_->ReturnAnchor(2, b->handle(), std::move(dup)).status().code(),
      absl::StatusCode::kNotFound);
  auto id = manager_->ReturnAnchor(1, b->handle(), std::move(*anchor));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, b->kernel_id());
  EXPECT_TRUE(manager_->AwaitingAnchor(1).empty());
  // The rule is known again: the same tuple is idempotent, a new one works.
  auto again = manager_->SteerFlow(1, b->handle(), TestTuple(1, 2));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(NicRules(), 1u);
  ASSERT_TRUE(manager_->SteerFlow(1, b->handle(), TestTuple(3, 4)).ok());
  // Releasing the session clears the NIC: the anchor was the last copy.
  manager_->ReleaseSession(1);
  EXPECT_EQ(NicRules(), 0u);
  EXPECT_EQ(sim_->GetCounters(kIfindex)->rx_bindings, 0u);
  EXPECT_TRUE(journal_->state().bindings().empty());
  EXPECT_TRUE(journal_->state().sessions().empty());
}

// After a restart devmemd has no copy of the anchor to compare with; the
// journal says which socket (or anchor file) it is, and ReturnAnchor holds
// the fd to that even where the backend alone would accept it.
TEST_F(NicRecoveryTest, ReturnedAnchorMustBeTheJournaledOne) {
  UniqueFd mem(memfd_create("rec", MFD_CLOEXEC));
  auto b = manager_->BindRx(1, {"sim0", ""}, 1, std::move(mem));
  ASSERT_TRUE(b.ok()) << b.status();
  auto anchor = manager_->DupAnchor(1, b->handle());
  ASSERT_TRUE(anchor.ok()) << anchor.status();
  const devmem::v1::JournaledBinding rec =
      journal_->state().bindings().at(b->handle());
  auto id = IdentifyFd(anchor->get_unowned());
  ASSERT_TRUE(id.ok());
  EXPECT_NE(rec.anchor_inode(), 0u);
  EXPECT_EQ(rec.anchor_dev(), id->dev);
  EXPECT_EQ(rec.anchor_inode(), id->ino);
  EXPECT_EQ(rec.anchor_netlink_port(), id->netlink_port);

  // The record names another socket: the real anchor no longer matches it.
  devmem::v1::JournalEntry forged;
  *forged.mutable_binding_put() = rec;
  forged.mutable_binding_put()->set_anchor_inode(rec.anchor_inode() + 1);
  ASSERT_TRUE(journal_->Record(forged, /*durable=*/true).ok());
  Boot();
  Recover();
  UniqueFd dup(fcntl(anchor->get_unowned(), F_DUPFD_CLOEXEC, 3));
  auto refused = manager_->ReturnAnchor(1, b->handle(), std::move(dup));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      refused.status().message(),
      HasSubstr(absl::StrCat("not the anchor of binding ", b->handle())));
  EXPECT_EQ(manager_->AwaitingAnchor(1), std::vector<uint64_t>({b->handle()}));

  // With the true record, the same fd is taken back.
  forged.mutable_binding_put()->set_anchor_inode(id->ino);
  ASSERT_TRUE(journal_->Record(forged, /*durable=*/true).ok());
  Boot();
  Recover();
  auto kernel_id = manager_->ReturnAnchor(1, b->handle(), std::move(*anchor));
  ASSERT_TRUE(kernel_id.ok()) << kernel_id.status();
  EXPECT_EQ(*kernel_id, b->kernel_id());
}

TEST_F(NicRecoveryTest, BindingWithNoHolderLeftIsDroppedWithItsRules) {
  UniqueFd mem(memfd_create("rec", MFD_CLOEXEC));
  auto b = manager_->BindRx(1, {"sim0", ""}, 1, std::move(mem));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(manager_->SteerFlow(1, b->handle(), TestTuple(1, 2)).ok());
  Boot();  // nobody kept the anchor: the NIC unbound it
  std::vector<devmem::v1::JournaledSession> detached;
  auto report = Recover(&detached);
  EXPECT_TRUE(detached.empty());
  EXPECT_THAT(report, Contains(HasSubstr("the kernel no longer has binding")));
  EXPECT_EQ(NicRules(), 0u) << "the rule of a dead binding stayed";
  EXPECT_TRUE(journal_->state().rules().empty());
  EXPECT_TRUE(journal_->state().sessions().empty());
}

TEST_F(NicRecoveryTest, UnfinishedRuleIsRemovedOrphansTooForeignRulesStay) {
  // The intent of a rule was journaled, the NIC made it, then the daemon
  // died before recording the outcome.
  FlowRule made;
  made.match = TestTuple(5, 6);
  made.queue = 7;
  ASSERT_TRUE(sim_->InsertRule(kIfindex, made).ok());
  devmem::v1::JournalEntry intent;
  auto* r = intent.mutable_rule_put();
  r->set_id(50);
  r->set_session(1);
  r->set_binding(49);
  r->set_nic("sim0");
  r->mutable_requested()->set_family(AF_INET);
  r->mutable_requested()->set_src_ip("10.0.0.2");
  r->mutable_requested()->set_src_port(5);
  r->mutable_requested()->set_dst_ip("10.0.0.1");
  r->mutable_requested()->set_dst_port(6);
  ASSERT_TRUE(journal_->Record(intent).ok());
  // A rule to the devmem pool with no record at all (its record was lost),
  // and someone else's rule to an ordinary queue.
  FlowRule orphan;
  orphan.match = TestTuple(7, 8);
  orphan.queue = 6;
  ASSERT_TRUE(sim_->InsertRule(kIfindex, orphan).ok());
  FlowRule foreign;
  foreign.match = TestTuple(9, 10);
  foreign.queue = 0;
  auto foreign_loc = sim_->InsertRule(kIfindex, foreign);
  ASSERT_TRUE(foreign_loc.ok());
  // A record of a rule the NIC does not have.
  devmem::v1::JournalEntry stale;
  *stale.mutable_rule_put() = *r;
  stale.mutable_rule_put()->set_id(51);
  stale.mutable_rule_put()->set_installed(true);
  stale.mutable_rule_put()->set_location(3);
  ASSERT_TRUE(journal_->Record(stale).ok());

  Boot();
  auto report = Recover();
  EXPECT_THAT(report.back(), HasSubstr("1 stale record(s) dropped, 1 "
                                       "unfinished rule(s) removed, 1 orphan"));
  EXPECT_EQ(NicRules(), 1u);
  EXPECT_TRUE(sim_->GetRule(kIfindex, *foreign_loc).ok())
      << "a rule devmemd did not make was removed";
  EXPECT_TRUE(journal_->state().rules().empty());
}

}  // namespace
}  // namespace devmem
