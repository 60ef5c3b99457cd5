#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <memory>
#include <string>

#include "daemon/nic/binder.h"
#include "daemon/nic/change_recorder.h"
#include "daemon/nic/lease_table.h"
#include "daemon/nic/nic_profiles.h"
#include "daemon/nic/restorer.h"
#include "daemon/nic/steering.h"
#include "daemon/nic/testing/sim0.h"
#include "daemon/state/lease_journal.h"
#include "gtest/gtest.h"
#include "kernel/unique_fd.h"

namespace devmem {

// The NIC-side pieces wired the way NicManager wires them, without
// NicManager, for the unit tests of Binder, Steering and Restorer: sim0 with
// its profile applied (pool: queues 6 and 7 by default), a journal, the
// recorder, the profiles, the leases and the three operations on them.
// Single-threaded, as NicManager's lock would make it.
class NicPartsTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kIfindex = 7;

  // The pool: the top `pool_queues` of sim0's 8 RX queues (set before SetUp).
  explicit NicPartsTest(uint32_t pool_queues = 2) : pool_queues_(pool_queues) {}

  void SetUp() override {
    dir_ = TestDir();
    config_ = Sim0Config(dir_ + "/state", pool_queues_);
    sim_ = Sim0(kIfindex, dir_ + "/sim");  // with anchors, as a workload sees
    ASSERT_NE(sim_, nullptr);
    inventory_ = Sim0Inventory(kIfindex);
    auto journal = LeaseJournal::Open({dir_ + "/journal"}, nullptr);
    ASSERT_TRUE(journal.ok()) << journal.status();
    journal_ = *std::move(journal);
    recorder_ = std::make_unique<ChangeRecorder>(journal_.get());
    profiles_ = std::make_unique<NicProfiles>(NicProfiles::Options{
        &config_, sim_.get(), inventory_.get(), recorder_.get()});
    leases_ = std::make_unique<LeaseTable>(LeaseTable::Quotas{});
    Binder::Deps deps;
    deps.config = &config_;
    deps.control = sim_.get();
    deps.recorder = recorder_.get();
    deps.profiles = profiles_.get();
    deps.leases = leases_.get();
    deps.session_record = [](uint64_t session) {
      devmem::v1::JournaledSession s;
      s.set_id(session);
      s.set_uid(1000 + static_cast<uint32_t>(session));
      s.set_pid(4000 + static_cast<uint32_t>(session));
      return s;
    };
    deps.withdraw_anchor_ticket = [this](uint64_t, uint64_t handle) {
      ++withdrawn_[handle];
    };
    deps.anchor_handed_out = [this](uint64_t, uint64_t handle) {
      return handed_out_.contains(handle);
    };
    binder_ = std::make_unique<Binder>(std::move(deps));
    steering_ = std::make_unique<Steering>(Steering::Deps{
        sim_.get(), recorder_.get(), profiles_.get(), leases_.get()});
    restorer_ = std::make_unique<Restorer>(Restorer::Deps{
        profiles_.get(), leases_.get(), binder_.get(), absl::Milliseconds(50)});
    profiles_->Apply(Sim0Record());
    ASSERT_EQ(Sim0Record().state, devmem::v1::PROFILE_STATE_APPLIED)
        << Sim0Record().reason;
  }

  NicRecord& Sim0Record() { return *profiles_->Find("sim0"); }
  SimulatedNic::Counters Counters() { return *sim_->GetCounters(kIfindex); }
  static UniqueFd Memfd() {
    return UniqueFd(memfd_create("devmem-test", MFD_CLOEXEC));
  }

  const uint32_t pool_queues_;
  std::string dir_;
  devmem::v1::DaemonConfig config_;
  std::unique_ptr<SimulatedNic> sim_;
  std::unique_ptr<FakeNicInventory> inventory_;
  std::unique_ptr<LeaseJournal> journal_;
  std::unique_ptr<ChangeRecorder> recorder_;
  std::unique_ptr<NicProfiles> profiles_;
  std::unique_ptr<LeaseTable> leases_;
  std::unique_ptr<Binder> binder_;
  std::unique_ptr<Steering> steering_;
  std::unique_ptr<Restorer> restorer_;
  // What the session hooks saw and answer.
  absl::flat_hash_map<uint64_t, int> withdrawn_;
  absl::flat_hash_set<uint64_t> handed_out_;
};

}  // namespace devmem
