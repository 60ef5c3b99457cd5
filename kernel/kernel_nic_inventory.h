#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernel/ethtool_ioctl.h"
#include "kernel/ethtool_netlink.h"
#include "kernel/netdev_genl.h"
#include "kernel/nic_info.h"
#include "kernel/nic_inventory.h"
#include "kernel/sysfs_topology.h"

namespace devmem {

// NicInventory backed by the running kernel: rtnetlink links (libnl-route),
// ethtool netlink (channels, rings, features, RSS), SIOCETHTOOL (ntuple rule
// table), the netdev family (queues, bind-rx, bind-tx) and sysfs (driver, PCI
// address, NUMA node).
//
// Capabilities per NIC, in this order: "channels", "rings", "features",
// "queues", "ntuple", "tcp_data_split", "hds_thresh", "bind_rx", "rss"
// (RSS_GET answered), "rss_netlink_set" (the kernel has ethtool RSS_SET,
// 6.17+; otherwise RSS changes take the ioctl path), "ntuple_rules"
// (ETHTOOL_GRXCLSRLCNT answered), "bind_tx" (netdev bind-tx, 6.16+).
//
// Namespace: the ethtool, ioctl and netdev sockets are opened by Create() and
// so live in the network namespace of the creating thread; links, names and
// ifindexes are read in the calling thread's namespace. Use it from threads
// in the namespace it was created in.
// Thread-safe: the two netlink sockets each serialize under their own mutex,
// and no call holds one of them while taking the other (no lock order); the
// ioctl socket needs no lock.
// Kernel families that are missing (ethtool netlink off, netdev before 6.3)
// do not fail Create(): the capabilities that need them say why. Any other
// socket setup failure is likewise reported by every probe; create a new
// inventory to retry.
class KernelNicInventory : public NicInventory {
 public:
  struct Options {
    std::string sysfs_root = "/sys";
  };

  static absl::StatusOr<std::unique_ptr<KernelNicInventory>> Create(
      const Options& options);
  static absl::StatusOr<std::unique_ptr<KernelNicInventory>> Create() {
    return Create(Options());
  }

  absl::StatusOr<std::vector<NicInfo>> List() override;
  absl::StatusOr<NicInfo> Get(absl::string_view name) override;
  absl::StatusOr<uint32_t> IfIndex(absl::string_view name) override;
  std::string BackendName() const override { return "kernel"; }

  // The ethtool reads the inventory is made of, one NIC at a time (for
  // callers that need only these, e.g. the benchmark). Errors as
  // EthtoolNetlink's.
  absl::StatusOr<ChannelsInfo> GetChannels(uint32_t ifindex);
  absl::StatusOr<FeaturesInfo> GetFeatures(uint32_t ifindex);
  absl::StatusOr<RingsInfo> GetRings(uint32_t ifindex);

 private:
  KernelNicInventory(absl::StatusOr<std::unique_ptr<EthtoolNetlink>> ethtool,
                     absl::StatusOr<std::unique_ptr<EthtoolIoctl>> ioctl,
                     absl::StatusOr<std::unique_ptr<NetdevGenl>> netdev,
                     SysfsTopology sysfs);

  // The capabilities added with NIC control: rss, rss_netlink_set,
  // ntuple_rules, bind_tx.
  // Appends them to `nic` (whose link is filled in).
  void ProbeControl(NicInfo& nic);

  // Probes everything about one link and fills its capabilities.
  NicInfo Probe(LinkInfo link);

  // NOT_FOUND naming the NICs that exist.
  static absl::Status NoSuchNic(absl::string_view name);

  // Open() failures, kept so each probe can report why it cannot run.
  absl::Status ethtool_status_;
  absl::Status ioctl_status_;
  absl::Status netdev_status_;
  std::unique_ptr<EthtoolNetlink> ethtool_;  // null if ethtool_status_ !ok
  std::unique_ptr<EthtoolIoctl> ioctl_;      // null if ioctl_status_ !ok
  std::unique_ptr<NetdevGenl> netdev_;       // null if netdev_status_ !ok
  const SysfsTopology sysfs_;
};

}  // namespace devmem
