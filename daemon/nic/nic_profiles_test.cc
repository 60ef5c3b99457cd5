#include "daemon/nic/nic_profiles.h"

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/nic/testing/sim0.h"
#include "daemon/state/lease_journal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/testing/fake_nic_inventory.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint32_t kIfindex = 7;

class NicProfilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir();
    config_ = Sim0Config(dir_ + "/state");
    sim_ = Sim0(kIfindex);
    ASSERT_NE(sim_, nullptr);
    inventory_ = Sim0Inventory(kIfindex);
    auto journal = LeaseJournal::Open({dir_ + "/journal"}, nullptr);
    ASSERT_TRUE(journal.ok()) << journal.status();
    journal_ = std::move(*journal);
    recorder_ = std::make_unique<ChangeRecorder>(journal_.get());
    profiles_ = std::make_unique<NicProfiles>(NicProfiles::Options{
        &config_, sim_.get(), inventory_.get(), recorder_.get()});
  }

  NicRecord& Sim0Record() { return *profiles_->Find("sim0"); }

  std::string dir_;
  devmem::v1::DaemonConfig config_;
  std::unique_ptr<SimulatedNic> sim_;
  std::unique_ptr<FakeNicInventory> inventory_;
  std::unique_ptr<LeaseJournal> journal_;
  std::unique_ptr<ChangeRecorder> recorder_;
  std::unique_ptr<NicProfiles> profiles_;
};

TEST_F(NicProfilesTest, ApplyRecordsFirstThenAppliesAndPutBackRestores) {
  EXPECT_THAT(profiles_->Names(), ElementsAre("sim0"));
  EXPECT_EQ(profiles_->Find("nope"), nullptr);
  NicRecord& nic = Sim0Record();
  const std::string line = profiles_->Apply(nic);
  EXPECT_THAT(line, HasSubstr("sim0: profile applied (devmem pool of 2"));
  EXPECT_EQ(nic.state, devmem::v1::PROFILE_STATE_APPLIED);
  EXPECT_TRUE(nic.recorded);
  EXPECT_EQ(nic.pool.free_count(), 2u);
  EXPECT_GT(nic.rule_quota, 0u);
  // The original is on disk and in the journal before anything changed.
  const std::string record = profiles_->RecordPath("sim0");
  EXPECT_EQ(access(record.c_str(), F_OK), 0) << record;
  EXPECT_TRUE(journal_->state().profiles().contains("sim0"));
  EXPECT_EQ(sim_->GetRings(kIfindex)->tcp_data_split, TcpDataSplit::kEnabled);

  const devmem::v1::NicState st = profiles_->State(nic);
  EXPECT_EQ(st.state(), devmem::v1::PROFILE_STATE_APPLIED);
  EXPECT_EQ(st.record_path(), record);
  EXPECT_EQ(st.actual().tcp_data_split(), devmem::v1::TCP_DATA_SPLIT_ENABLED);
  EXPECT_EQ(st.desired().tcp_data_split(), devmem::v1::TCP_DATA_SPLIT_ENABLED);
  EXPECT_EQ(st.pool_queues_size(), 2);
  EXPECT_EQ(st.free_queues_size(), 2);
  EXPECT_EQ(st.bindings(), 0u);  // the leases' to fill in

  absl::Status status;
  EXPECT_THAT(profiles_->PutBack(nic, 1, 2, &status),
              HasSubstr("original state restored after releasing 1 "
                        "binding(s) and 2 rule(s)"));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(nic.state, devmem::v1::PROFILE_STATE_RESTORED);
  EXPECT_FALSE(nic.recorded);
  EXPECT_EQ(nic.pool.free_count(), 0u);
  EXPECT_NE(access(record.c_str(), F_OK), 0);
  EXPECT_FALSE(journal_->state().profiles().contains("sim0"));
  EXPECT_EQ(sim_->GetRings(kIfindex)->tcp_data_split, TcpDataSplit::kUnknown);
}

TEST_F(NicProfilesTest,
       HeaderSplitOnlyAppliesSplitLeavesSteeringAndServesNoPool) {
  // A header_split_only profile (for NICs such as netdevsim; the kernel
  // matrix applies one to netdevsim for real). Here on the simulated NIC,
  // which has ntuple and RSS: they are left alone all the same.
  NicRecord& nic = Sim0Record();
  nic.profile.set_header_split_only(true);
  const bool ntuple_before = sim_->GetFeatures(kIfindex)->ntuple_active;
  const std::vector<uint32_t> indir_before = sim_->GetRss(kIfindex, 0)->indir;
  const std::string line = profiles_->Apply(nic);
  EXPECT_THAT(line,
              HasSubstr("sim0: profile partly applied (header_split_only"));
  EXPECT_EQ(nic.state, devmem::v1::PROFILE_STATE_PARTIAL);
  EXPECT_EQ(sim_->GetRings(kIfindex)->tcp_data_split, TcpDataSplit::kEnabled);
  EXPECT_EQ(sim_->GetFeatures(kIfindex)->ntuple_active, ntuple_before);
  EXPECT_EQ(sim_->GetRss(kIfindex, 0)->indir, indir_before);
  EXPECT_EQ(nic.pool.free_count(), 0u);
  EXPECT_EQ(nic.rule_quota, 0u);
  // Recorded without ntuple or RSS: restoring never touches them.
  EXPECT_FALSE(nic.original.has_ntuple());
  EXPECT_EQ(nic.original.rss_indir_size(), 0);
  const devmem::v1::NicState st = profiles_->State(nic);
  EXPECT_EQ(st.state(), devmem::v1::PROFILE_STATE_PARTIAL);
  EXPECT_EQ(st.desired().tcp_data_split(), devmem::v1::TCP_DATA_SPLIT_ENABLED);
  EXPECT_FALSE(st.desired().has_ntuple());
  EXPECT_EQ(st.pool_queues_size(), 0);
  // No binding or reservation can use it, and the answer says why.
  absl::StatusOr<NicRecord*> resolved = profiles_->Resolve({"sim0", ""});
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(resolved.status().message(), HasSubstr("partial"));

  absl::Status status;
  profiles_->PutBack(nic, 0, 0, &status);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(nic.state, devmem::v1::PROFILE_STATE_RESTORED);
  EXPECT_EQ(sim_->GetRings(kIfindex)->tcp_data_split, TcpDataSplit::kUnknown);
  EXPECT_EQ(sim_->GetRss(kIfindex, 0)->indir, indir_before);
}

TEST_F(NicProfilesTest, HeaderSplitOnlyStillNeedsHeaderSplit) {
  // Only ntuple and RSS may be missing: a NIC without header split is not
  // capable of even the partial profile, and nothing is changed.
  NicRecord& nic = Sim0Record();
  nic.profile.set_header_split_only(true);
  sim_->FailNext(SimOp::kGetRings, ErrnoStatus(EOPNOTSUPP, "rings"));
  profiles_->Apply(nic);
  EXPECT_EQ(nic.state, devmem::v1::PROFILE_STATE_NOT_CAPABLE);
  EXPECT_THAT(nic.reason, HasSubstr("tcp_data_split"));
  EXPECT_FALSE(nic.recorded);
}

TEST_F(NicProfilesTest, AKernelRefusalOnPutBackKeepsTheRecord) {
  NicRecord& nic = Sim0Record();
  profiles_->Apply(nic);
  sim_->FailNext(SimOp::kSetRings, ErrnoStatus(EBUSY, "rings"));
  absl::Status status;
  profiles_->PutBack(nic, 0, 0, &status);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("restore header split"));
  EXPECT_EQ(nic.state, devmem::v1::PROFILE_STATE_FAILED);
  EXPECT_THAT(nic.reason, HasSubstr("the record is kept at"));
  EXPECT_EQ(access(profiles_->RecordPath("sim0").c_str(), F_OK), 0);
}

TEST_F(NicProfilesTest, ResolveNamesWhatIsWrong) {
  NicRecord& nic = Sim0Record();
  EXPECT_EQ(profiles_->Resolve({"sim0", "0000:3b:00.0"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(profiles_->Resolve({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(profiles_->Resolve({"eth9", ""}).status().code(),
            absl::StatusCode::kNotFound);
  auto not_ready = profiles_->Resolve({"sim0", ""});
  EXPECT_EQ(not_ready.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(not_ready.status().message(), HasSubstr("sim0 is not ready"));
  EXPECT_EQ(profiles_->Resolve({"", "../x"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  profiles_->Apply(nic);
  auto ready = profiles_->Resolve({"sim0", ""});
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(*ready, &nic);
}

TEST_F(NicProfilesTest, DriftIsNoticedAndClears) {
  NicRecord& nic = Sim0Record();
  profiles_->Apply(nic);
  EXPECT_EQ(profiles_->CheckDrift(nic), "");
  RingsSet off;
  off.tcp_data_split = TcpDataSplit::kDisabled;
  ASSERT_TRUE(sim_->SetRings(kIfindex, off).ok());
  EXPECT_THAT(profiles_->CheckDrift(nic),
              HasSubstr("header split is no longer ENABLED"));
  EXPECT_FALSE(nic.degraded.empty());
  RingsSet on;
  on.tcp_data_split = TcpDataSplit::kEnabled;
  ASSERT_TRUE(sim_->SetRings(kIfindex, on).ok());
  EXPECT_EQ(profiles_->CheckDrift(nic), "");
  EXPECT_TRUE(nic.degraded.empty());
}

TEST_F(NicProfilesTest, UnmanagedNicsAreShownIfTheyExist) {
  EXPECT_EQ(profiles_->Unmanaged("eth9").status().code(),
            absl::StatusCode::kNotFound);
  auto st = profiles_->Unmanaged("sim0");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state(), devmem::v1::PROFILE_STATE_UNMANAGED);
  EXPECT_EQ(ProfileStateName(devmem::v1::PROFILE_STATE_NOT_CAPABLE),
            "not devmem-capable");
}

}  // namespace
}  // namespace devmem
