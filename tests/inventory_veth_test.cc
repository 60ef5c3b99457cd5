// KernelNicInventory against the real kernel, in a private network namespace
// with a veth pair, checked against ethtool(8) and ip(8) as independent
// witnesses. Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN for
// the links); skips with the reason otherwise.

#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/kernel_nic_inventory.h"
#include "kernel/testing/netns_veth.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

constexpr char kVeth[] = "dmv0";
constexpr char kPeer[] = "dmv1";

// `ethtool -l IF`, parsed: "Pre-set maximums:" then "Current hardware
// settings:", each with "RX:", "TX:", "Other:", "Combined:" = number | n/a.
ChannelsInfo ParseEthtoolL(const std::string& text) {
  ChannelsInfo info;
  bool maximums = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "Pre-set maximums")) maximums = true;
    if (absl::StartsWith(line, "Current hardware settings")) maximums = false;
    std::vector<std::string> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() != 2) continue;
    uint32_t value = 0;
    std::optional<uint32_t> parsed;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(kv[1]), &value)) {
      parsed = value;
    }
    const std::string& key = kv[0];
    if (key == "RX") (maximums ? info.rx_max : info.rx_count) = parsed;
    if (key == "TX") (maximums ? info.tx_max : info.tx_count) = parsed;
    if (key == "Other") (maximums ? info.other_max : info.other_count) = parsed;
    if (key == "Combined") {
      (maximums ? info.combined_max : info.combined_count) = parsed;
    }
  }
  return info;
}

struct NtupleWitness {
  bool found = false;
  bool active = false;      // "on"
  bool changeable = false;  // no "[fixed]"
};

// `ethtool -k IF`, the "ntuple-filters: off [fixed]" line.
NtupleWitness ParseEthtoolK(const std::string& text) {
  NtupleWitness w;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "ntuple-filters:")) continue;
    w.found = true;
    line = absl::StripLeadingAsciiWhitespace(line);
    w.active = absl::StartsWith(line, "on");
    w.changeable = !absl::StrContains(line, "[fixed]");
  }
  return w;
}

std::string Describe(const std::optional<uint32_t>& v) {
  return v.has_value() ? std::to_string(*v) : "n/a";
}

void ExpectChannelsEqual(const ChannelsInfo& got, const ChannelsInfo& want) {
  EXPECT_EQ(Describe(got.rx_max), Describe(want.rx_max));
  EXPECT_EQ(Describe(got.tx_max), Describe(want.tx_max));
  EXPECT_EQ(Describe(got.other_max), Describe(want.other_max));
  EXPECT_EQ(Describe(got.combined_max), Describe(want.combined_max));
  EXPECT_EQ(Describe(got.rx_count), Describe(want.rx_count));
  EXPECT_EQ(Describe(got.tx_count), Describe(want.tx_count));
  EXPECT_EQ(Describe(got.other_count), Describe(want.other_count));
  EXPECT_EQ(Describe(got.combined_count), Describe(want.combined_count));
}

const Capability* Find(const NicInfo& nic, absl::string_view name) {
  for (const Capability& c : nic.capabilities) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

class InventoryVethTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root to create a network namespace and a veth "
                      "pair (euid "
                   << geteuid() << ")";
    }
    absl::StatusOr<std::unique_ptr<testing::ScopedNetns>> ns =
        testing::ScopedNetns::Enter();
    if (!ns.ok()) {
      if (StatusErrno(ns.status()) == EPERM) {
        GTEST_SKIP() << "cannot create a network namespace: " << ns.status();
      }
      FAIL() << ns.status();
    }
    ns_ = *std::move(ns);
    absl::StatusOr<std::unique_ptr<testing::ScopedVethPair>> veth =
        testing::ScopedVethPair::Create(kVeth, kPeer);
    ASSERT_TRUE(veth.ok()) << veth.status();
    veth_ = *std::move(veth);
    // Created inside the namespace, so its netlink sockets live there.
    absl::StatusOr<std::unique_ptr<KernelNicInventory>> inventory =
        KernelNicInventory::Create();
    ASSERT_TRUE(inventory.ok()) << inventory.status();
    inventory_ = *std::move(inventory);
  }

  // Runs a witness command that must succeed; returns its output.
  std::string Witness(const std::vector<std::string>& argv) {
    absl::StatusOr<testing::CommandResult> r = testing::RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_EQ(r->exit_code, 0)
        << absl::StrJoin(argv, " ") << " failed: " << r->output;
    return r->output;
  }

  NicInfo GetVeth() {
    absl::StatusOr<NicInfo> nic = inventory_->Get(kVeth);
    EXPECT_TRUE(nic.ok()) << nic.status();
    return nic.ok() ? *nic : NicInfo();
  }

  // Torn down in reverse: sockets, then the links, then back to the
  // original namespace (the private one dies with it, even after a failure).
  std::unique_ptr<testing::ScopedNetns> ns_;
  std::unique_ptr<testing::ScopedVethPair> veth_;
  std::unique_ptr<KernelNicInventory> inventory_;
};

TEST_F(InventoryVethTest, ListsExactlyTheNamespacesLinks) {
  absl::StatusOr<std::vector<NicInfo>> nics = inventory_->List();
  ASSERT_TRUE(nics.ok()) << nics.status();
  std::vector<std::string> names;
  for (const NicInfo& nic : *nics) names.push_back(nic.link.name);
  EXPECT_THAT(names, UnorderedElementsAre("lo", kVeth, kPeer));

  const NicInfo veth = GetVeth();
  EXPECT_EQ(veth.link.kind, "veth");
  EXPECT_EQ(veth.link.ifindex, if_nametoindex(kVeth));
  EXPECT_TRUE(veth.link.admin_up);
  EXPECT_FALSE(veth.link.oper_state.empty());
  // ip(8) as witness for the address and MTU.
  const std::string ip = Witness({"ip", "-o", "link", "show", "dev", kVeth});
  EXPECT_THAT(ip, HasSubstr("link/ether " + veth.link.mac));
  EXPECT_THAT(ip, HasSubstr("mtu " + std::to_string(veth.link.mtu)));
  // veth has no parent device in sysfs.
  EXPECT_EQ(veth.link.driver, "");
  EXPECT_EQ(veth.link.pci_address, "");
}

TEST_F(InventoryVethTest, ChannelsMatchEthtoolL) {
  const NicInfo veth = GetVeth();
  const Capability* cap = Find(veth, "channels");
  ASSERT_NE(cap, nullptr);
  EXPECT_EQ(cap->support, Support::kSupported) << cap->reason;
  ASSERT_TRUE(veth.channels.has_value());
  const ChannelsInfo witness = ParseEthtoolL(Witness({"ethtool", "-l", kVeth}));
  ASSERT_TRUE(witness.rx_count.has_value()) << "could not parse ethtool -l";
  ExpectChannelsEqual(*veth.channels, witness);
}

TEST_F(InventoryVethTest, ChannelChangesShowInChannelsAndQueues) {
  const NicInfo before = GetVeth();
  ASSERT_TRUE(before.channels.has_value());
  const uint32_t rx_max = before.channels->rx_max.value_or(1);
  const uint32_t tx_max = before.channels->tx_max.value_or(1);
  Witness({"ethtool", "-L", kVeth, "rx", std::to_string(rx_max), "tx",
           std::to_string(tx_max)});

  const NicInfo after = GetVeth();
  ASSERT_TRUE(after.channels.has_value());
  ExpectChannelsEqual(*after.channels,
                      ParseEthtoolL(Witness({"ethtool", "-l", kVeth})));
  EXPECT_EQ(after.channels->rx_count, rx_max);
  EXPECT_EQ(after.channels->tx_count, tx_max);
  size_t rx = 0, tx = 0;
  for (const QueueInfo& q : after.queues) {
    (q.type == QueueInfo::Type::kRx ? rx : tx)++;
  }
  EXPECT_EQ(rx, rx_max);
  EXPECT_EQ(tx, tx_max);
}

TEST_F(InventoryVethTest, FeaturesAndNtupleMatchEthtoolK) {
  const NicInfo veth = GetVeth();
  EXPECT_EQ(Find(veth, "features")->support, Support::kSupported)
      << Find(veth, "features")->reason;
  ASSERT_TRUE(veth.features.has_value());
  EXPECT_GT(veth.features->feature_count, 0u);
  const NtupleWitness witness =
      ParseEthtoolK(Witness({"ethtool", "-k", kVeth}));
  ASSERT_TRUE(witness.found) << "no ntuple-filters line in ethtool -k";
  EXPECT_EQ(veth.features->ntuple_active, witness.active);
  EXPECT_EQ(veth.features->ntuple_hw, witness.changeable);
  EXPECT_EQ(Find(veth, "ntuple")->support,
            witness.changeable ? Support::kSupported : Support::kUnsupported);
}

TEST_F(InventoryVethTest, RingsAreUnsupportedLikeEthtoolG) {
  const NicInfo veth = GetVeth();
  const Capability* rings = Find(veth, "rings");
  ASSERT_NE(rings, nullptr);
  EXPECT_EQ(rings->support, Support::kUnsupported);
  EXPECT_EQ(rings->error, EOPNOTSUPP);
  EXPECT_THAT(rings->reason, HasSubstr("rings-get dmv0"));
  EXPECT_FALSE(veth.rings.has_value());
  // tcp-data-split and hds-thresh cannot be had without rings.
  EXPECT_EQ(Find(veth, "tcp_data_split")->support, Support::kUnsupported);
  EXPECT_EQ(Find(veth, "tcp_data_split")->error, EOPNOTSUPP);
  EXPECT_EQ(Find(veth, "hds_thresh")->support, Support::kUnsupported);

  absl::StatusOr<testing::CommandResult> g =
      testing::RunCommand({"ethtool", "-g", kVeth});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_NE(g->exit_code, 0) << g->output;
  EXPECT_THAT(g->output, HasSubstr("Operation not supported"));
}

TEST_F(InventoryVethTest, QueuesAreListed) {
  const NicInfo veth = GetVeth();
  EXPECT_EQ(Find(veth, "queues")->support, Support::kSupported);
  ASSERT_TRUE(veth.channels.has_value());
  std::vector<uint32_t> rx_ids, tx_ids;
  for (const QueueInfo& q : veth.queues) {
    (q.type == QueueInfo::Type::kRx ? rx_ids : tx_ids).push_back(q.id);
    EXPECT_FALSE(q.dmabuf.has_value());
  }
  // One queue per current channel, numbered from 0 (ethtool -l witness).
  const ChannelsInfo witness = ParseEthtoolL(Witness({"ethtool", "-l", kVeth}));
  ASSERT_TRUE(witness.rx_count.has_value() && witness.tx_count.has_value());
  std::vector<uint32_t> want_rx, want_tx;
  for (uint32_t i = 0; i < *witness.rx_count; ++i) want_rx.push_back(i);
  for (uint32_t i = 0; i < *witness.tx_count; ++i) want_tx.push_back(i);
  EXPECT_EQ(rx_ids, want_rx);
  EXPECT_EQ(tx_ids, want_tx);
  EXPECT_EQ(Find(veth, "bind_rx")->support, Support::kSupported);
}

TEST_F(InventoryVethTest, DownDeviceListsNoQueuesAndSaysWhy) {
  Witness({"ip", "link", "set", kVeth, "down"});
  const NicInfo veth = GetVeth();
  EXPECT_FALSE(veth.link.admin_up);
  EXPECT_TRUE(veth.queues.empty());
  EXPECT_THAT(Find(veth, "queues")->reason, HasSubstr("down"));
}

TEST_F(InventoryVethTest, UnknownNicNamesTheNamespacesNics) {
  absl::StatusOr<NicInfo> nic = inventory_->Get("nope0");
  ASSERT_FALSE(nic.ok());
  EXPECT_EQ(nic.status().code(), absl::StatusCode::kNotFound);
  const std::string message(nic.status().message());
  EXPECT_THAT(message,
              StartsWith("no NIC named \"nope0\"; NICs on this host: "));
  EXPECT_THAT(message, HasSubstr("lo"));
  EXPECT_THAT(message, HasSubstr(kVeth));
  EXPECT_THAT(message, HasSubstr(kPeer));
  absl::StatusOr<uint32_t> index = inventory_->IfIndex(kVeth);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(*index, if_nametoindex(kVeth));
  EXPECT_EQ(inventory_->IfIndex("nope0").status().message(), message);
}

}  // namespace
}  // namespace devmem
