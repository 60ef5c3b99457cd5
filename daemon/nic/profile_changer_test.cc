// Run-time profile changes on sim0, commit-confirmed: an unconfirmed change
// reverts by itself to exactly the recorded state, a confirmed one stays
// (also across a restart), a restart between apply and confirm still
// reverts, and a NIC carrying work is refused.
#include <sys/mman.h>

#include "absl/strings/match.h"
#include "daemon/nic/testing/sim0_host.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ProfileChangerTest : public Sim0Host {
 protected:
  void SetUp() override { SetUpHost(/*pool_queues=*/2); }

  devmem::v1::ApplyProfileRequest Ask(uint32_t pool_queues,
                                      uint32_t within_s = 30) {
    devmem::v1::ApplyProfileRequest req;
    req.mutable_profile()->set_nic("sim0");
    req.mutable_profile()->set_pool_queues(pool_queues);
    req.set_confirm_within_s(within_s);
    return req;
  }

  static std::vector<uint32_t> Pool(const devmem::v1::NicState& st) {
    return {st.pool_queues().begin(), st.pool_queues().end()};
  }
};

TEST_F(ProfileChangerTest, UnconfirmedChangeRevertsToExactlyWhatWasThere) {
  const devmem::v1::NicState before = State();
  ASSERT_THAT(Pool(before), ElementsAre(6, 7));
  auto applied = manager_->ApplyProfile(Ask(4), "uid:0");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_THAT(Pool(applied->state()), ElementsAre(4, 5, 6, 7));
  EXPECT_EQ(applied->state().pending_change().change_id(),
            applied->change().change_id());
  EXPECT_EQ(applied->change().previous().pool_queues(), 2U);
  clock_.Advance(absl::Seconds(29));
  EXPECT_TRUE(manager_->ExpireProfileChanges().empty()) << "not yet";
  clock_.Advance(absl::Seconds(2));
  auto lines = manager_->ExpireProfileChanges();
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_THAT(lines[0], HasSubstr("not confirmed in time"));
  const devmem::v1::NicState after = State();
  EXPECT_THAT(Pool(after), ElementsAre(6, 7));
  EXPECT_FALSE(after.has_pending_change());
  EXPECT_EQ(after.actual().DebugString(), before.actual().DebugString())
      << "the NIC's settings are what they were before the change";
  EXPECT_EQ(after.original().DebugString(), before.original().DebugString());
  // A restart keeps the reverted profile.
  Boot();
  EXPECT_THAT(Pool(State()), ElementsAre(6, 7));
}

TEST_F(ProfileChangerTest, ConfirmedChangeStaysAcrossARestart) {
  auto applied = manager_->ApplyProfile(Ask(3), "spiffe://ops");
  ASSERT_TRUE(applied.ok()) << applied.status();
  devmem::v1::ConfirmProfileRequest confirm;
  confirm.set_nic("sim0");
  confirm.set_change_id("pc-wrong");
  EXPECT_EQ(manager_->ConfirmProfile(confirm).status().code(),
            absl::StatusCode::kNotFound);
  confirm.set_change_id(applied->change().change_id());
  auto confirmed = manager_->ConfirmProfile(confirm);
  ASSERT_TRUE(confirmed.ok()) << confirmed.status();
  EXPECT_FALSE(confirmed->state().has_pending_change());
  EXPECT_EQ(confirmed->state().profile().pool_queues(), 3U);
  clock_.Advance(absl::Hours(1));
  EXPECT_TRUE(manager_->ExpireProfileChanges().empty());
  EXPECT_THAT(Pool(State()), ElementsAre(5, 6, 7));
  Boot();
  EXPECT_THAT(Pool(State()), ElementsAre(5, 6, 7))
      << "the confirmed profile wins over the config's after a restart";
  EXPECT_EQ(State().profile().pool_queues(), 3U);
}

TEST_F(ProfileChangerTest, RevertPutsThePreviousProfileBackAtOnce) {
  const devmem::v1::NicState before = State();
  auto applied = manager_->ApplyProfile(Ask(4), "spiffe://ops");
  ASSERT_TRUE(applied.ok()) << applied.status();
  devmem::v1::RevertProfileRequest revert;
  revert.set_nic("sim0");
  revert.set_change_id("pc-wrong");
  EXPECT_EQ(manager_->RevertProfile(revert).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(Pool(State()), ElementsAre(4, 5, 6, 7)) << "a wrong id: no-op";
  revert.set_change_id(applied->change().change_id());
  auto reverted = manager_->RevertProfile(revert);
  ASSERT_TRUE(reverted.ok()) << reverted.status();
  EXPECT_FALSE(reverted->state().has_pending_change());
  EXPECT_THAT(Pool(reverted->state()), ElementsAre(6, 7));
  EXPECT_EQ(reverted->state().actual().DebugString(),
            before.actual().DebugString());
  EXPECT_EQ(manager_->RevertProfile(revert).status().code(),
            absl::StatusCode::kNotFound)
      << "reverting twice";
  devmem::v1::ConfirmProfileRequest confirm;
  confirm.set_nic("sim0");
  confirm.set_change_id(applied->change().change_id());
  EXPECT_EQ(manager_->ConfirmProfile(confirm).status().code(),
            absl::StatusCode::kNotFound)
      << "a reverted change cannot be confirmed";
  Boot();
  EXPECT_THAT(Pool(State()), ElementsAre(6, 7)) << "the revert is journaled";
  EXPECT_FALSE(State().has_pending_change());
}

TEST_F(ProfileChangerTest, ARestartBetweenApplyAndConfirmStillReverts) {
  const devmem::v1::NicState before = State();
  auto applied = manager_->ApplyProfile(Ask(4, /*within_s=*/20), "uid:0");
  ASSERT_TRUE(applied.ok()) << applied.status();
  // kill -9 and restart within the time: the change is still pending.
  Boot();
  EXPECT_THAT(Pool(State()), ElementsAre(4, 5, 6, 7));
  EXPECT_EQ(State().pending_change().change_id(),
            applied->change().change_id());
  clock_.Advance(absl::Seconds(21));
  EXPECT_EQ(manager_->ExpireProfileChanges().size(), 1U);
  EXPECT_THAT(Pool(State()), ElementsAre(6, 7));
  // Another apply, then a restart after its deadline: reverted at start.
  applied = manager_->ApplyProfile(Ask(4, /*within_s=*/20), "uid:0");
  ASSERT_TRUE(applied.ok()) << applied.status();
  clock_.Advance(absl::Seconds(60));
  Boot();
  EXPECT_THAT(Pool(State()), ElementsAre(6, 7));
  EXPECT_FALSE(State().has_pending_change());
  EXPECT_EQ(State().actual().DebugString(), before.actual().DebugString());
  bool said = false;
  for (const std::string& l : boot_lines_) {
    said |= absl::StrContains(l, "was not confirmed by");
  }
  EXPECT_TRUE(said) << "the start-up log says it reverted";
}

TEST_F(ProfileChangerTest, RefusesWhatWouldBreakWorkOrIsNotOurs) {
  auto made = [&] {
    devmem::v1::ReserveRequest req;
    req.set_job_id("job-1");
    req.set_ttl_s(60);
    auto* item = req.add_items();
    item->set_nic("sim0");
    item->set_queue_count(1);
    return manager_->Reserve(req, "uid:0");
  }();
  ASSERT_TRUE(made.ok()) << made.status();
  auto refused = manager_->ApplyProfile(Ask(4), "uid:0");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("0 queue(s) bound and 1 reserved"));
  EXPECT_THAT(Pool(State()), ElementsAre(6, 7)) << "nothing changed";
  devmem::v1::ReleaseReservationRequest rel;
  rel.set_job_id("job-1");
  ASSERT_TRUE(manager_->ReleaseReservation(rel, "uid:0").ok());
  devmem::v1::ApplyProfileRequest other = Ask(4);
  other.mutable_profile()->set_nic("eth9");
  EXPECT_EQ(manager_->ApplyProfile(other, "uid:0").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->ApplyProfile(Ask(4, 4000), "uid:0").status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(manager_->ApplyProfile(Ask(4), "uid:0").ok());
  auto twice = manager_->ApplyProfile(Ask(3), "uid:0");
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(twice.status().message(), HasSubstr("waiting for confirmation"));
  // A profile the NIC cannot take: the previous one is back at once.
  devmem::v1::ApplyProfileRequest bad;
  clock_.Advance(absl::Seconds(31));
  manager_->ExpireProfileChanges();
  bad = Ask(2);
  bad.mutable_profile()->set_combined_channels(99);  // sim0 has 16 at most
  auto failed = manager_->ApplyProfile(bad, "uid:0");
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(failed.status().message(), HasSubstr("previous profile is back"));
  EXPECT_THAT(Pool(State()), ElementsAre(6, 7));
  EXPECT_FALSE(State().has_pending_change());
}

}  // namespace
}  // namespace devmem
