#include "daemon/nic/simulated/simulated_nic_inventory.h"

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/nic/simulated/simulated_nic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/testing/fake_nic_inventory.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A base inventory with two real-looking links.
std::unique_ptr<NicInventory> Base() {
  NicInfo veth;
  veth.link.name = "veth0";
  veth.link.ifindex = 5;
  veth.link.kind = "veth";
  veth.link.mac = "02:00:00:00:00:05";
  veth.link.driver = "veth";
  Capability rings;
  rings.name = "rings";
  rings.support = Support::kUnsupported;
  rings.error = EOPNOTSUPP;
  veth.capabilities.push_back(rings);
  NicInfo eth;
  eth.link.name = "eth0";
  eth.link.ifindex = 2;
  eth.capabilities.push_back(rings);
  return std::make_unique<FakeNicInventory>(std::vector<NicInfo>{eth, veth});
}

std::shared_ptr<SimulatedNic> Nics(std::vector<SimulatedNicSpec> specs) {
  absl::StatusOr<std::unique_ptr<SimulatedNic>> nic =
      SimulatedNic::Create(std::move(specs));
  EXPECT_TRUE(nic.ok()) << nic.status();
  return nic.ok() ? std::shared_ptr<SimulatedNic>(*std::move(nic)) : nullptr;
}

std::vector<std::string> CapabilityNames(const NicInfo& nic) {
  std::vector<std::string> names;
  for (const Capability& c : nic.capabilities) names.push_back(c.name);
  return names;
}

const Capability* FindCapability(const NicInfo& nic, absl::string_view name) {
  for (const Capability& c : nic.capabilities) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

TEST(SimulatedNicInventoryTest, OverlaysALinkAndAddsOneWithoutALink) {
  std::shared_ptr<SimulatedNic> nic =
      Nics({SimulatedNicSpec{"veth0", 5}, SimulatedNicSpec{"sim0", 1000}});
  auto inventory = SimulatedNicInventory::Create(Base(), nic);
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  EXPECT_EQ((*inventory)->BackendName(), "simulated (over fake)");

  absl::StatusOr<std::vector<NicInfo>> list = (*inventory)->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 3u);
  const NicInfo& eth = (*list)[0];
  const NicInfo& veth = (*list)[1];
  const NicInfo& sim = (*list)[2];

  // Untouched pass-through.
  EXPECT_EQ(eth.link.name, "eth0");
  EXPECT_THAT(CapabilityNames(eth), ElementsAre("rings"));
  EXPECT_FALSE(eth.channels.has_value());

  // The veth keeps its link facts but gets the simulated NIC's state.
  EXPECT_EQ(veth.link.name, "veth0");
  EXPECT_EQ(veth.link.kind, "veth");
  EXPECT_EQ(veth.link.mac, "02:00:00:00:00:05");
  ASSERT_TRUE(veth.channels.has_value());
  EXPECT_EQ(veth.channels->combined_count, 8u);
  ASSERT_TRUE(veth.rings.has_value());
  EXPECT_EQ(veth.rings->hds_thresh_max, 1024u);
  ASSERT_TRUE(veth.features.has_value());
  EXPECT_TRUE(veth.features->ntuple_hw);
  EXPECT_EQ(veth.queues.size(), 16u);
  EXPECT_THAT(CapabilityNames(veth),
              ElementsAre("channels", "rings", "features", "queues", "ntuple",
                          "tcp_data_split", "hds_thresh", "bind_rx", "bind_tx",
                          "rss", "ntuple_rules"));
  for (const Capability& c : veth.capabilities) {
    EXPECT_EQ(c.support, Support::kSupported) << c.name;
    EXPECT_EQ(c.reason, "simulated") << c.name;
  }

  // No base link: made-up link facts.
  EXPECT_EQ(sim.link.name, "sim0");
  EXPECT_EQ(sim.link.ifindex, 1000u);
  EXPECT_EQ(sim.link.kind, "simulated");
  EXPECT_TRUE(sim.link.admin_up);
  EXPECT_EQ(sim.capabilities.size(), 11u);
}

TEST(SimulatedNicInventoryTest, GetAndIfIndex) {
  std::shared_ptr<SimulatedNic> nic =
      Nics({SimulatedNicSpec{"veth0", 5}, SimulatedNicSpec{"sim0", 1000}});
  auto inventory = SimulatedNicInventory::Create(Base(), nic);
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  NicInventory& inv = **inventory;

  absl::StatusOr<NicInfo> veth = inv.Get("veth0");
  ASSERT_TRUE(veth.ok()) << veth.status();
  EXPECT_EQ(veth->link.kind, "veth");
  EXPECT_TRUE(veth->channels.has_value());
  absl::StatusOr<NicInfo> sim = inv.Get("sim0");
  ASSERT_TRUE(sim.ok()) << sim.status();
  EXPECT_EQ(sim->link.kind, "simulated");
  absl::StatusOr<NicInfo> eth = inv.Get("eth0");
  ASSERT_TRUE(eth.ok()) << eth.status();
  EXPECT_FALSE(eth->channels.has_value());

  EXPECT_EQ(*inv.IfIndex("veth0"), 5u);
  EXPECT_EQ(*inv.IfIndex("sim0"), 1000u);
  EXPECT_EQ(*inv.IfIndex("eth0"), 2u);

  absl::Status missing = inv.Get("nope").status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(missing.message(), HasSubstr("eth0"));
  EXPECT_THAT(missing.message(), HasSubstr("simulated NICs: veth0, sim0"));
  missing = inv.IfIndex("nope").status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(missing.message(), HasSubstr("sim0"));
}

TEST(SimulatedNicInventoryTest, ReflectsChangesMadeThroughTheNic) {
  std::shared_ptr<SimulatedNic> nic = Nics({SimulatedNicSpec{"sim0", 1000}});
  auto inventory = SimulatedNicInventory::Create(nullptr, nic);
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  EXPECT_EQ((*inventory)->BackendName(), "simulated");
  ChannelsSet set;
  set.combined_count = 2;
  ASSERT_TRUE(nic->SetChannels(1000, set).ok());
  absl::StatusOr<NicInfo> sim = (*inventory)->Get("sim0");
  ASSERT_TRUE(sim.ok()) << sim.status();
  EXPECT_EQ(sim->channels->combined_count, 2u);
  EXPECT_EQ(sim->queues.size(), 4u);
  EXPECT_TRUE(absl::IsNotFound((*inventory)->Get("eth0").status()));
}

TEST(SimulatedNicInventoryTest, FailedSimulatedReadIsACapabilityNotAnError) {
  std::shared_ptr<SimulatedNic> nic = Nics({SimulatedNicSpec{"sim0", 1000}});
  auto inventory = SimulatedNicInventory::Create(nullptr, nic);
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  nic->FailNext(SimOp::kGetRings, ErrnoStatus(EOPNOTSUPP, "injected"));
  absl::StatusOr<NicInfo> sim = (*inventory)->Get("sim0");
  ASSERT_TRUE(sim.ok()) << sim.status();
  EXPECT_FALSE(sim->rings.has_value());
  const Capability* rings = FindCapability(*sim, "rings");
  ASSERT_NE(rings, nullptr);
  EXPECT_EQ(rings->support, Support::kUnsupported);
  EXPECT_EQ(rings->error, EOPNOTSUPP);
  EXPECT_EQ(FindCapability(*sim, "channels")->support, Support::kSupported);
}

TEST(SimulatedNicInventoryTest, CreateRefusesIfindexesThatDoNotFit) {
  // veth0 is ifindex 5 in the base.
  auto wrong = SimulatedNicInventory::Create(
      Base(), Nics({SimulatedNicSpec{"veth0", 6}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong.status())) << wrong.status();
  // ifindex 2 is eth0's.
  auto taken = SimulatedNicInventory::Create(
      Base(), Nics({SimulatedNicSpec{"sim0", 2}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(taken.status())) << taken.status();
  EXPECT_THAT(taken.status().message(), HasSubstr("eth0"));
  EXPECT_TRUE(absl::IsInvalidArgument(
      SimulatedNicInventory::Create(Base(), nullptr).status()));
}

TEST(SimulatedNicInventoryTest, AssignIfIndexes) {
  std::unique_ptr<NicInventory> base = Base();
  std::vector<SimulatedNicSpec> specs = {
      SimulatedNicSpec{"veth0", 0}, SimulatedNicSpec{"sim0", 0},
      SimulatedNicSpec{"sim1", SimulatedNicInventory::kFirstMadeUpIfIndex},
      SimulatedNicSpec{"sim2", 0}};
  ASSERT_TRUE(SimulatedNicInventory::AssignIfIndexes(base.get(), &specs).ok());
  EXPECT_EQ(specs[0].ifindex, 5u);
  EXPECT_EQ(specs[1].ifindex, SimulatedNicInventory::kFirstMadeUpIfIndex + 1);
  EXPECT_EQ(specs[2].ifindex, SimulatedNicInventory::kFirstMadeUpIfIndex);
  EXPECT_EQ(specs[3].ifindex, SimulatedNicInventory::kFirstMadeUpIfIndex + 2);
  // The result fits Create()'s checks.
  EXPECT_TRUE(SimulatedNicInventory::Create(std::move(base), Nics(specs)).ok());
}

}  // namespace
}  // namespace devmem
