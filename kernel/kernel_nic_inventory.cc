#include "kernel/kernel_nic_inventory.h"

#include <net/if.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernel/errno_status.h"
#include "kernel/ifname_util.h"
#include "kernel/rtnl_links.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

// A family that the kernel lacks means the capability is unsupported, not
// unknown: say so with EOPNOTSUPP so CapabilityFromStatus classifies it.
absl::Status MissingFamily(const absl::Status& open_status,
                           absl::string_view what) {
  const int err = StatusErrno(open_status);
  if (err == ENOENT || absl::IsNotFound(open_status)) {
    return ErrnoStatus(EOPNOTSUPP, what, open_status.message());
  }
  const std::string context =
      absl::StrCat(what, ": socket setup failed: ", open_status.message());
  if (err != 0) return ErrnoStatus(err, context);
  return absl::Status(open_status.code(), context);
}

Capability Derived(std::string name, Support support, std::string reason,
                   int error = 0) {
  Capability cap;
  cap.name = std::move(name);
  cap.support = support;
  cap.reason = std::move(reason);
  cap.error = error;
  return cap;
}

// A derived capability whose base probe failed inherits that failure.
Capability Inherited(std::string name, const Capability& base) {
  Capability cap = base;
  cap.name = std::move(name);
  cap.reason = absl::StrCat("needs ", base.name, ": ", base.reason);
  return cap;
}

// ntuple: the feature must be in the changeable (HW) set.
void AddNtupleCapability(const absl::StatusOr<FeaturesInfo>& features,
                         const Capability& features_cap,
                         std::vector<Capability>* caps) {
  if (!features.ok()) {
    caps->push_back(Inherited("ntuple", features_cap));
  } else if (features->ntuple_hw) {
    caps->push_back(Derived("ntuple", Support::kSupported,
                            features->ntuple_active
                                ? "rx-ntuple-filter is on"
                                : "rx-ntuple-filter can be turned on"));
  } else {
    caps->push_back(Derived(
        "ntuple", Support::kUnsupported,
        "rx-ntuple-filter is not in the device's changeable (hw) features"));
  }
}

// tcp_data_split and hds_thresh hang off RINGS_GET.
void AddSplitCapabilities(const absl::StatusOr<RingsInfo>& rings,
                          const Capability& rings_cap,
                          std::vector<Capability>* caps) {
  if (!rings.ok()) {
    caps->push_back(Inherited("tcp_data_split", rings_cap));
    caps->push_back(Inherited("hds_thresh", rings_cap));
  } else {
    // net/ethtool/rings.c: GET reports the current split state for any driver
    // with get_ringparam; whether SET may change it depends on the driver's
    // supported_ring_params, which no GET exposes.
    caps->push_back(Derived(
        "tcp_data_split", Support::kSupported,
        "RINGS_GET answers, but that is not proof that RINGS_SET can change "
        "tcp-data-split (the driver must support ETHTOOL_RING_USE_TCP_DATA_"
        "SPLIT); only a SET attempt tells"));
    if (rings->hds_thresh_max.has_value()) {
      caps->push_back(
          Derived("hds_thresh", Support::kSupported,
                  absl::StrCat("hds-thresh max ", *rings->hds_thresh_max)));
    } else {
      caps->push_back(Derived(
          "hds_thresh", Support::kUnsupported,
          "RINGS_GET has no hds-thresh-max: the kernel (before 6.14) or the "
          "driver has no header-data-split threshold"));
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<KernelNicInventory>> KernelNicInventory::Create(
    const Options& options) {
  return std::unique_ptr<KernelNicInventory>(new KernelNicInventory(
      EthtoolNetlink::Open(), EthtoolIoctl::Open(), NetdevGenl::Open(),
      SysfsTopology(options.sysfs_root)));
}

KernelNicInventory::KernelNicInventory(
    absl::StatusOr<std::unique_ptr<EthtoolNetlink>> ethtool,
    absl::StatusOr<std::unique_ptr<EthtoolIoctl>> ioctl,
    absl::StatusOr<std::unique_ptr<NetdevGenl>> netdev, SysfsTopology sysfs)
    : ethtool_status_(ethtool.status()),
      ioctl_status_(ioctl.status()),
      netdev_status_(netdev.status()),
      sysfs_(std::move(sysfs)) {
  if (ethtool.ok()) ethtool_ = *std::move(ethtool);
  if (ioctl.ok()) ioctl_ = *std::move(ioctl);
  if (netdev.ok()) netdev_ = *std::move(netdev);
}

absl::StatusOr<ChannelsInfo> KernelNicInventory::GetChannels(uint32_t ifindex) {
  if (ethtool_ == nullptr) {
    return MissingFamily(ethtool_status_, "ethtool channels-get");
  }
  return ethtool_->GetChannels(ifindex);
}

absl::StatusOr<FeaturesInfo> KernelNicInventory::GetFeatures(uint32_t ifindex) {
  if (ethtool_ == nullptr) {
    return MissingFamily(ethtool_status_, "ethtool features-get");
  }
  return ethtool_->GetFeatures(ifindex);
}

absl::StatusOr<RingsInfo> KernelNicInventory::GetRings(uint32_t ifindex) {
  if (ethtool_ == nullptr) {
    return MissingFamily(ethtool_status_, "ethtool rings-get");
  }
  return ethtool_->GetRings(ifindex);
}

NicInfo KernelNicInventory::Probe(LinkInfo link) {
  NicInfo nic;
  const uint32_t ifindex = link.ifindex;

  // /sys shows the namespace it was mounted in; skip it for another's links.
  absl::StatusOr<DeviceTopology> topo = sysfs_.Lookup(link.name);
  if (topo.ok() && topo->ifindex == link.ifindex) {
    link.driver = topo->driver;
    link.pci_address = topo->pci_address;
    link.numa_node = topo->numa_node;
  }
  const bool up = link.admin_up;
  nic.link = std::move(link);

  absl::StatusOr<ChannelsInfo> channels = GetChannels(ifindex);
  if (channels.ok()) nic.channels = *channels;
  nic.capabilities.push_back(
      CapabilityFromStatus("channels", channels.status()));

  absl::StatusOr<RingsInfo> rings = GetRings(ifindex);
  if (rings.ok()) nic.rings = *rings;
  const Capability rings_cap = CapabilityFromStatus("rings", rings.status());
  nic.capabilities.push_back(rings_cap);

  absl::StatusOr<FeaturesInfo> features = GetFeatures(ifindex);
  if (features.ok()) nic.features = *features;
  const Capability features_cap =
      CapabilityFromStatus("features", features.status());
  nic.capabilities.push_back(features_cap);

  absl::StatusOr<std::vector<QueueInfo>> queues =
      netdev_ != nullptr ? netdev_->QueueGet(ifindex)
                         : absl::StatusOr<std::vector<QueueInfo>>(MissingFamily(
                               netdev_status_, "netdev queue-get"));
  Capability queues_cap = CapabilityFromStatus("queues", queues.status());
  if (queues.ok()) {
    nic.queues = *std::move(queues);
    if (nic.queues.empty() && !up) {
      // net/core/netdev-genl.c netdev_nl_queue_get_dump_one() skips down
      // devices.
      queues_cap.reason =
          "the device is down; the kernel lists queues only "
          "for devices that are up";
    }
  }
  nic.capabilities.push_back(queues_cap);

  AddNtupleCapability(features, features_cap, &nic.capabilities);
  AddSplitCapabilities(rings, rings_cap, &nic.capabilities);

  // bind_rx: the kernel's netdev family must register op 13.
  if (netdev_ == nullptr) {
    absl::Status missing = MissingFamily(netdev_status_, "netdev bind-rx");
    nic.capabilities.push_back(CapabilityFromStatus("bind_rx", missing));
  } else if (netdev_->HasBindRx()) {
    nic.capabilities.push_back(Derived(
        "bind_rx", Support::kSupported,
        "the kernel has netdev bind-rx; whether this driver can complete a "
        "bind is only known by trying"));
  } else {
    nic.capabilities.push_back(Derived(
        "bind_rx", Support::kUnsupported,
        "the kernel's netdev family has no bind-rx (op 13, added in 6.12)",
        EOPNOTSUPP));
  }
  ProbeControl(nic);
  return nic;
}

void KernelNicInventory::ProbeControl(NicInfo& nic) {
  const uint32_t ifindex = nic.link.ifindex;

  // rss: whether RSS_GET answers for the main table.
  if (ethtool_ == nullptr) {
    nic.capabilities.push_back(CapabilityFromStatus(
        "rss", MissingFamily(ethtool_status_, "ethtool rss-get")));
  } else {
    absl::StatusOr<RssInfo> rss = ethtool_->GetRss(ifindex, /*context=*/0);
    Capability cap = CapabilityFromStatus("rss", rss.status());
    if (rss.ok()) {
      // drivers/net/virtio_net.c without VIRTIO_NET_F_RSS answers with a
      // hash function but no table: still an answer, but say so.
      cap.reason =
          rss->indir.empty()
              ? "RSS_GET answers, but the device reports no indirection table"
              : absl::StrCat("RSS_GET answers: ", rss->indir.size(),
                             "-entry indirection table, ", rss->hkey.size(),
                             "-byte key");
    }
    nic.capabilities.push_back(std::move(cap));
  }

  // rss_netlink_set: a kernel property (the family's op list), not the
  // driver's; the ioctl path covers older kernels.
  if (ethtool_ == nullptr) {
    nic.capabilities.push_back(CapabilityFromStatus(
        "rss_netlink_set", MissingFamily(ethtool_status_, "ethtool rss-set")));
  } else if (ethtool_->HasOp(ETHTOOL_MSG_RSS_SET)) {
    nic.capabilities.push_back(Derived(
        "rss_netlink_set", Support::kSupported,
        "the kernel has ethtool RSS_SET, RSS_CREATE_ACT and RSS_DELETE_ACT "
        "(6.17+); whether this driver can change its table is only known by "
        "trying"));
  } else {
    nic.capabilities.push_back(Derived(
        "rss_netlink_set", Support::kUnsupported,
        "the kernel's ethtool family has no RSS_SET (op 48, added in 6.17); "
        "RSS changes fall back to the SIOCETHTOOL ioctl (ETHTOOL_SRXFHINDIR / "
        "ETHTOOL_SRSSH)",
        EOPNOTSUPP));
  }

  // ntuple_rules: the rule table over SIOCETHTOOL (ioctl-only even in
  // ethtool 7.0, KERNEL_API.md section 3).
  if (ioctl_ == nullptr) {
    const int err = StatusErrno(ioctl_status_);
    const std::string reason = absl::StrCat(
        "ethtool GRXCLSRLCNT: socket setup failed: ", ioctl_status_.message());
    nic.capabilities.push_back(CapabilityFromStatus(
        "ntuple_rules", err != 0 ? ErrnoStatus(err, reason)
                                 : absl::Status(ioctl_status_.code(), reason)));
  } else {
    absl::StatusOr<RuleTableInfo> rules = ioctl_->GetRules(nic.link.name);
    Capability cap = CapabilityFromStatus("ntuple_rules", rules.status());
    if (rules.ok()) {
      cap.reason = absl::StrCat(
          rules->locations.size(), " rule(s) installed, table size ",
          rules->table_size,
          rules->driver_picks_location ? ", the driver picks locations" : "");
    }
    nic.capabilities.push_back(std::move(cap));
  }

  // bind_tx: the kernel's netdev family must register op 15.
  if (netdev_ == nullptr) {
    nic.capabilities.push_back(CapabilityFromStatus(
        "bind_tx", MissingFamily(netdev_status_, "netdev bind-tx")));
  } else if (netdev_->family().HasOp(NETDEV_CMD_BIND_TX)) {
    nic.capabilities.push_back(Derived(
        "bind_tx", Support::kSupported,
        "the kernel has netdev bind-tx; whether this driver supports netmem "
        "TX is only known by trying"));
  } else {
    nic.capabilities.push_back(Derived(
        "bind_tx", Support::kUnsupported,
        "the kernel's netdev family has no bind-tx (op 15, added in 6.16)",
        EOPNOTSUPP));
  }
}

absl::StatusOr<std::vector<NicInfo>> KernelNicInventory::List() {
  absl::StatusOr<std::vector<LinkInfo>> links = ListLinks();
  if (!links.ok()) return links.status();
  std::vector<NicInfo> nics;
  nics.reserve(links->size());
  for (LinkInfo& link : *links) nics.push_back(Probe(std::move(link)));
  return nics;
}

absl::StatusOr<NicInfo> KernelNicInventory::Get(absl::string_view name) {
  absl::StatusOr<LinkInfo> link = GetLink(name);
  if (!link.ok()) {
    if (absl::IsNotFound(link.status())) return NoSuchNic(name);
    return link.status();
  }
  return Probe(*std::move(link));
}

absl::StatusOr<uint32_t> KernelNicInventory::IfIndex(absl::string_view name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return NoSuchNic(name);
  const std::string name_copy(name);
  errno = 0;
  const unsigned index = if_nametoindex(name_copy.c_str());
  if (index == 0) {
    // ENODEV is "no such NIC"; anything else (EMFILE when out of fds) is a
    // failure to ask, not an answer.
    if (errno != 0 && errno != ENODEV && errno != ENXIO) {
      return ErrnoStatus(errno, absl::StrCat("if_nametoindex(", name, ")"));
    }
    return NoSuchNic(name);
  }
  return static_cast<uint32_t>(index);
}

absl::Status KernelNicInventory::NoSuchNic(absl::string_view name) {
  return absl::NotFoundError(absl::StrCat(
      "no NIC named \"", name,
      "\"; NICs on this host: ", absl::StrJoin(ListIfNames(), ", ")));
}

}  // namespace devmem
