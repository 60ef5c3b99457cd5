#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/base/testing/fake_clock.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/nic/testing/sim0.h"
#include "daemon/state/lease_journal.h"
#include "gtest/gtest.h"

namespace devmem {

// A devmemd's NIC side on sim0 for unit tests that restart it: a real
// journal and a simulated NIC whose state outlive a Boot(), an injected
// clock, and the NicManager over them with its profiles applied. Boot()
// again is a "restart" (kill -9: nothing is restored).
class Sim0Host : public ::testing::Test {
 protected:
  static constexpr uint32_t kIfindex = 9;

  // Sessions' uids: 1000 + id, or 1000 for all with `one_uid`.
  void SetUpHost(uint32_t pool_queues, bool one_uid = false) {
    one_uid_ = one_uid;
    dir_ = TestDir();
    config_ = Sim0Config(dir_ + "/state", pool_queues);
    inventory_ = Sim0Inventory(kIfindex);
    Boot();
  }

  void Boot() {
    manager_.reset();
    journal_.reset();
    sim_.reset();
    sim_ = Sim0(kIfindex, dir_ + "/simnic");
    ASSERT_NE(sim_, nullptr);
    auto j = LeaseJournal::Open({dir_ + "/journal", false}, nullptr);
    ASSERT_TRUE(j.ok()) << j.status();
    journal_ = std::move(*j);
    NicManager::Options o;
    o.config = &config_;
    o.control = sim_.get();
    o.inventory = inventory_.get();
    o.journal = journal_.get();
    o.clock = &clock_;
    o.host_key = "0123456789abcdef0123456789abcdef";
    o.session_record = [one_uid = one_uid_](uint64_t id) {
      devmem::v1::JournaledSession rec;
      rec.set_id(id);
      rec.set_token(absl::StrCat("token", id));
      rec.set_uid(one_uid ? 1000 : static_cast<uint32_t>(1000 + id));
      return std::optional<devmem::v1::JournaledSession>(rec);
    };
    manager_ = std::make_unique<NicManager>(o);
    boot_lines_ = manager_->ApplyAll();
  }

  devmem::v1::NicState State() {
    auto states = manager_->States({"sim0"});
    EXPECT_TRUE(states.ok()) << states.status();
    return states.ok() ? (*states)[0] : devmem::v1::NicState();
  }

  std::string dir_;
  devmem::v1::DaemonConfig config_;
  FakeClock clock_;
  std::unique_ptr<FakeNicInventory> inventory_;
  std::unique_ptr<SimulatedNic> sim_;
  std::unique_ptr<LeaseJournal> journal_;
  std::unique_ptr<NicManager> manager_;
  std::vector<std::string> boot_lines_;
  bool one_uid_ = false;
};

}  // namespace devmem
