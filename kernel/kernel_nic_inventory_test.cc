#include "kernel/kernel_nic_inventory.h"

#include <net/if.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const Capability* Find(const NicInfo& nic, const std::string& name) {
  for (const Capability& c : nic.capabilities) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::vector<std::string> Names(const NicInfo& nic) {
  std::vector<std::string> names;
  for (const Capability& c : nic.capabilities) names.push_back(c.name);
  return names;
}

class KernelNicInventoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<KernelNicInventory>> created =
        KernelNicInventory::Create();
    ASSERT_TRUE(created.ok()) << created.status();
    inventory_ = *std::move(created);
  }
  std::unique_ptr<KernelNicInventory> inventory_;
};

TEST_F(KernelNicInventoryTest, Backend) {
  EXPECT_EQ(inventory_->BackendName(), "kernel");
}

TEST_F(KernelNicInventoryTest, IfIndex) {
  absl::StatusOr<uint32_t> lo = inventory_->IfIndex("lo");
  ASSERT_TRUE(lo.ok()) << lo.status();
  EXPECT_EQ(*lo, if_nametoindex("lo"));
  absl::StatusOr<uint32_t> none = inventory_->IfIndex("nope0");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(none.status().message()),
              StartsWith("no NIC named \"nope0\"; NICs on this host: lo"));
  EXPECT_EQ(inventory_->IfIndex("").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(KernelNicInventoryTest, GetUnknownNamesTheNicsThatExist) {
  absl::StatusOr<NicInfo> nic = inventory_->Get("x");
  ASSERT_FALSE(nic.ok());
  EXPECT_EQ(nic.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(nic.status().message()),
              StartsWith("no NIC named \"x\"; NICs on this host: lo"));
}

TEST_F(KernelNicInventoryTest, LoopbackCapabilities) {
  absl::StatusOr<NicInfo> nic = inventory_->Get("lo");
  ASSERT_TRUE(nic.ok()) << nic.status();
  EXPECT_EQ(nic->link.name, "lo");
  EXPECT_EQ(nic->link.ifindex, if_nametoindex("lo"));
  EXPECT_EQ(nic->link.driver, "");
  EXPECT_EQ(nic->link.numa_node, -1);
  EXPECT_THAT(Names(*nic),
              ElementsAre("channels", "rings", "features", "queues", "ntuple",
                          "tcp_data_split", "hds_thresh", "bind_rx", "rss",
                          "rss_netlink_set", "ntuple_rules", "bind_tx"));

  // drivers/net/loopback.c has neither get_channels nor get_ringparam.
  const Capability* channels = Find(*nic, "channels");
  EXPECT_EQ(channels->support, Support::kUnsupported);
  EXPECT_EQ(channels->error, EOPNOTSUPP);
  EXPECT_THAT(channels->reason, HasSubstr("channels-get lo"));
  EXPECT_FALSE(nic->channels.has_value());
  const Capability* rings = Find(*nic, "rings");
  EXPECT_EQ(rings->support, Support::kUnsupported);
  EXPECT_EQ(rings->error, EOPNOTSUPP);
  EXPECT_FALSE(nic->rings.has_value());

  EXPECT_EQ(Find(*nic, "features")->support, Support::kSupported);
  ASSERT_TRUE(nic->features.has_value());
  EXPECT_GT(nic->features->feature_count, 10u);

  EXPECT_EQ(Find(*nic, "queues")->support, Support::kSupported);
  EXPECT_EQ(nic->queues.size(), 2u);

  EXPECT_EQ(Find(*nic, "ntuple")->support, Support::kUnsupported);
  EXPECT_THAT(Find(*nic, "ntuple")->reason, HasSubstr("rx-ntuple-filter"));

  const Capability* split = Find(*nic, "tcp_data_split");
  EXPECT_EQ(split->support, Support::kUnsupported);
  EXPECT_EQ(split->error, EOPNOTSUPP);
  EXPECT_THAT(split->reason, HasSubstr("needs rings"));
  EXPECT_EQ(Find(*nic, "hds_thresh")->support, Support::kUnsupported);

  // This kernel (6.18) registers bind-rx.
  const Capability* bind = Find(*nic, "bind_rx");
  EXPECT_EQ(bind->support, Support::kSupported);
  EXPECT_THAT(bind->reason, HasSubstr("only known by trying"));

  // Loopback has no get_rxfh (RSS_GET) and no get_rxnfc (GRXCLSRLCNT).
  const Capability* rss = Find(*nic, "rss");
  EXPECT_EQ(rss->support, Support::kUnsupported);
  EXPECT_EQ(rss->error, EOPNOTSUPP);
  EXPECT_THAT(rss->reason, HasSubstr("rss-get lo"));
  const Capability* rules = Find(*nic, "ntuple_rules");
  EXPECT_EQ(rules->support, Support::kUnsupported);
  EXPECT_EQ(rules->error, EOPNOTSUPP);
  EXPECT_THAT(rules->reason, HasSubstr("GRXCLSRLCNT lo"));
  // Kernel properties: this kernel (6.18) has ethtool RSS_SET (6.17) and
  // netdev bind-tx (6.16).
  const Capability* rss_set = Find(*nic, "rss_netlink_set");
  EXPECT_EQ(rss_set->support, Support::kSupported);
  EXPECT_THAT(rss_set->reason, HasSubstr("RSS_SET"));
  const Capability* bind_tx = Find(*nic, "bind_tx");
  EXPECT_EQ(bind_tx->support, Support::kSupported);
  EXPECT_THAT(bind_tx->reason, HasSubstr("only known by trying"));
}

std::vector<std::string> LibcNames() {
  std::vector<std::string> names;
  struct if_nameindex* list = if_nameindex();
  if (list == nullptr) return names;
  for (struct if_nameindex* it = list; it->if_index != 0; ++it) {
    names.push_back(it->if_name);
  }
  if_freenameindex(list);
  return names;
}

TEST_F(KernelNicInventoryTest, ListHasEveryLinkInIfindexOrder) {
  // if_nameindex(3) is an independent listing, also in ifindex order. Other
  // tests may add or remove links in this namespace meanwhile, so retry a
  // bounded number of times until two snapshots agree.
  std::vector<std::string> from_kernel, from_libc;
  for (int attempt = 0; attempt < 20; ++attempt) {
    const std::vector<std::string> before = LibcNames();
    absl::StatusOr<std::vector<NicInfo>> nics = inventory_->List();
    ASSERT_TRUE(nics.ok()) << nics.status();
    ASSERT_FALSE(nics->empty());
    from_kernel.clear();
    for (const NicInfo& nic : *nics) {
      from_kernel.push_back(nic.link.name);
      EXPECT_EQ(nic.capabilities.size(), 12u) << nic.link.name;
    }
    from_libc = LibcNames();
    if (before == from_libc && from_kernel == from_libc) break;
  }
  EXPECT_EQ(from_kernel, from_libc);
}

TEST(KernelNicInventoryOptionsTest, SysfsRootIsInjected) {
  KernelNicInventory::Options options;
  options.sysfs_root = "/nonexistent-sysfs-root";
  absl::StatusOr<std::unique_ptr<KernelNicInventory>> inventory =
      KernelNicInventory::Create(options);
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  absl::StatusOr<NicInfo> nic = (*inventory)->Get("lo");
  ASSERT_TRUE(nic.ok()) << nic.status();
  EXPECT_EQ(nic->link.numa_node, -1);
  EXPECT_EQ(nic->link.pci_address, "");
}

TEST_F(KernelNicInventoryTest, ConcurrentGetsAgree) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        absl::StatusOr<NicInfo> nic = inventory_->Get("lo");
        if (!nic.ok() || nic->capabilities.size() != 12 ||
            nic->queues.size() != 2) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace devmem
