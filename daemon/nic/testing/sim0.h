#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/config.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "gtest/gtest.h"
#include "kernel/testing/fake_nic_inventory.h"
#include "proto/devmem/v1/config.pb.h"

namespace devmem {

// What the NIC-side unit tests share: one simulated NIC "sim0", the config
// whose only profile names it (a pool of `pool_queues`: queues 6 and 7 of 8
// by default), and an inventory listing it, up.

// A directory of the running test's own under TEST_TMPDIR.
inline std::string TestDir() {
  return absl::StrCat(
      std::getenv("TEST_TMPDIR"), "/",
      ::testing::UnitTest::GetInstance()->current_test_info()->name());
}

// Finalized (defaults filled in); records go to `state_dir`.
inline devmem::v1::DaemonConfig Sim0Config(const std::string& state_dir,
                                           uint32_t pool_queues = 2) {
  devmem::v1::DaemonConfig config;
  config.set_state_dir(state_dir);
  auto* p = config.add_nic_profiles();
  p->set_nic("sim0");
  p->set_pool_queues(pool_queues);
  EXPECT_TRUE(FinalizeConfig(&config, "test").ok());
  return config;
}

inline std::unique_ptr<FakeNicInventory> Sim0Inventory(uint32_t ifindex) {
  NicInfo info;
  info.link.name = "sim0";
  info.link.ifindex = ifindex;
  info.link.admin_up = true;
  info.link.oper_state = "up";
  return std::make_unique<FakeNicInventory>(std::vector<NicInfo>{info});
}

// With `state_dir`, its state and binding anchors outlive it (a "crash").
inline std::unique_ptr<SimulatedNic> Sim0(uint32_t ifindex,
                                          const std::string& state_dir = "") {
  SimulatedNicSpec spec;
  spec.name = "sim0";
  spec.ifindex = ifindex;
  SimulatedNic::Options options;
  options.state_dir = state_dir;
  auto sim = SimulatedNic::Create({spec}, options);
  EXPECT_TRUE(sim.ok()) << sim.status();
  return sim.ok() ? *std::move(sim) : nullptr;
}

}  // namespace devmem
