#include "kernel/kernel_nic_control.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernel/errno_status.h"
#include "kernel/genl_msg.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

// An RSS_SET/RSS_CREATE_ACT message is about 44 bytes plus the table; larger
// tables than fit GenlMsg::kMaxBytes go over the ioctl, which has no such
// limit.
constexpr size_t kRssMessageOverhead = 64;

bool FitsNetlink(absl::Span<const uint32_t> indir) {
  return indir.size() * sizeof(uint32_t) + kRssMessageOverhead <=
         GenlMsg::kMaxBytes;
}

// The ioctls name devices; the interface speaks ifindexes.
absl::StatusOr<std::string> IfName(uint32_t ifindex, absl::string_view op) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(ifindex, name) == nullptr) {
    return ErrnoStatus(errno, absl::StrCat(op, " ifindex ", ifindex));
  }
  return std::string(name);
}

// OK if `fd` is a NETLINK_GENERIC socket, the only kind a netdev binding
// hangs off (net/core/netdev-genl.c netdev_nl_sock_priv_init()).
absl::Status CheckGenlSocket(int fd, absl::string_view what) {
  if (fcntl(fd, F_GETFD) < 0) {
    return ErrnoStatus(errno, absl::StrCat(what, ": fd ", fd,
                                           " is not an open file, so not a "
                                           "generic netlink socket"));
  }
  int domain = -1;
  int protocol = -1;
  socklen_t len = sizeof(domain);
  const bool genl =
      getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
      (len = sizeof(protocol),
       getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0) &&
      domain == AF_NETLINK && protocol == NETLINK_GENERIC;
  if (!genl) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": fd ", fd, " is ", DescribeFd(fd),
                     ", not a generic netlink socket"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<KernelNicControl>> KernelNicControl::Create() {
  absl::StatusOr<std::unique_ptr<EthtoolNetlink>> ethtool =
      EthtoolNetlink::Open();
  if (!ethtool.ok()) return ethtool.status();
  absl::StatusOr<std::unique_ptr<NetdevGenl>> netdev = NetdevGenl::Open();
  if (!netdev.ok()) {
    return absl::Status(netdev.status().code(),
                        absl::StrCat("netdev generic netlink family: ",
                                     netdev.status().message()));
  }
  absl::StatusOr<std::unique_ptr<EthtoolIoctl>> ioctl = EthtoolIoctl::Open();
  if (!ioctl.ok()) return ioctl.status();
  return std::unique_ptr<KernelNicControl>(new KernelNicControl(
      *std::move(ethtool), *std::move(netdev), *std::move(ioctl)));
}

absl::StatusOr<ChannelsInfo> KernelNicControl::GetChannels(uint32_t ifindex) {
  return ethtool_->GetChannels(ifindex);
}

absl::Status KernelNicControl::SetChannels(uint32_t ifindex,
                                           const ChannelsSet& channels) {
  return ethtool_->SetChannels(ifindex, channels);
}

absl::StatusOr<RingsInfo> KernelNicControl::GetRings(uint32_t ifindex) {
  return ethtool_->GetRings(ifindex);
}

absl::Status KernelNicControl::SetRings(uint32_t ifindex,
                                        const RingsSet& rings) {
  return ethtool_->SetRings(ifindex, rings);
}

absl::StatusOr<FeaturesInfo> KernelNicControl::GetFeatures(uint32_t ifindex) {
  return ethtool_->GetFeatures(ifindex);
}

absl::Status KernelNicControl::SetNtuple(uint32_t ifindex, bool enable) {
  return ethtool_->SetNtuple(ifindex, enable);
}

bool KernelNicControl::RssSetUsesNetlink() const {
  return ethtool_->HasOp(ETHTOOL_MSG_RSS_SET);
}

absl::StatusOr<RssInfo> KernelNicControl::GetRss(uint32_t ifindex,
                                                 uint32_t context) {
  if (ethtool_->HasOp(ETHTOOL_MSG_RSS_GET)) {
    return ethtool_->GetRss(ifindex, context);
  }
  absl::StatusOr<std::string> ifname = IfName(ifindex, "ethtool GRSSH");
  if (!ifname.ok()) return ifname.status();
  absl::StatusOr<RssInfo> info = ioctl_->GetRss(*ifname, context);
  if (info.ok()) info->context = context;
  return info;
}

absl::Status KernelNicControl::SetRssIndir(uint32_t ifindex, uint32_t context,
                                           absl::Span<const uint32_t> indir) {
  if (ethtool_->HasOp(ETHTOOL_MSG_RSS_SET) && FitsNetlink(indir)) {
    return ethtool_->SetRssIndir(ifindex, context, indir);
  }
  absl::StatusOr<std::string> ifname = IfName(ifindex, "ethtool SRSSH");
  if (!ifname.ok()) return ifname.status();
  // The ioctls want the whole table (net/ethtool/ioctl.c
  // ethtool_set_rxfh_indir() checks the size); repeat a shorter period.
  std::vector<uint32_t> whole;
  if (!indir.empty()) {
    absl::StatusOr<RssInfo> current = ioctl_->GetRss(*ifname, context);
    if (current.ok() && !current->indir.empty() &&
        current->indir.size() != indir.size() &&
        current->indir.size() % indir.size() == 0) {
      whole.resize(current->indir.size());
      for (size_t i = 0; i < whole.size(); ++i) {
        whole[i] = indir[i % indir.size()];
      }
      indir = whole;
    }
  }
  return ioctl_->SetRssIndir(*ifname, context, indir);
}

absl::StatusOr<uint32_t> KernelNicControl::CreateRssContext(
    uint32_t ifindex, absl::Span<const uint32_t> indir) {
  if (ethtool_->HasOp(ETHTOOL_MSG_RSS_CREATE_ACT) && FitsNetlink(indir)) {
    return ethtool_->CreateRssContext(ifindex, indir);
  }
  absl::StatusOr<std::string> ifname = IfName(ifindex, "ethtool SRSSH");
  if (!ifname.ok()) return ifname.status();
  return ioctl_->CreateRssContext(*ifname, indir);
}

absl::Status KernelNicControl::DeleteRssContext(uint32_t ifindex,
                                                uint32_t context) {
  if (ethtool_->HasOp(ETHTOOL_MSG_RSS_DELETE_ACT)) {
    return ethtool_->DeleteRssContext(ifindex, context);
  }
  absl::StatusOr<std::string> ifname = IfName(ifindex, "ethtool SRSSH");
  if (!ifname.ok()) return ifname.status();
  return ioctl_->DeleteRssContext(*ifname, context);
}

absl::StatusOr<uint32_t> KernelNicControl::InsertRule(uint32_t ifindex,
                                                      const FlowRule& rule) {
  absl::StatusOr<std::string> ifname = IfName(ifindex, "ethtool SRXCLSRLINS");
  if (!ifname.ok()) return ifname.status();
  return ioctl_->InsertRule(*ifname, rule);
}

absl::Status KernelNicControl::DeleteRule(uint32_t ifindex, uint32_t location) {
  absl::StatusOr<std::string> ifname = IfName(ifindex, "ethtool SRXCLSRLDEL");
  if (!ifname.ok()) return ifname.status();
  return ioctl_->DeleteRule(*ifname, location);
}

absl::StatusOr<NicControl::RuleTable> KernelNicControl::ListRules(
    uint32_t ifindex) {
  absl::StatusOr<std::string> ifname = IfName(ifindex, "ethtool GRXCLSRLCNT");
  if (!ifname.ok()) return ifname.status();
  absl::StatusOr<RuleTableInfo> info = ioctl_->GetRules(*ifname);
  if (!info.ok()) return info.status();
  RuleTable table;
  table.locations = std::move(info->locations);
  table.table_size = info->table_size;
  return table;
}

absl::StatusOr<FlowRule> KernelNicControl::GetRule(uint32_t ifindex,
                                                   uint32_t location) {
  absl::StatusOr<std::string> ifname = IfName(ifindex, "ethtool GRXCLSRULE");
  if (!ifname.ok()) return ifname.status();
  return ioctl_->GetRule(*ifname, location);
}

absl::StatusOr<std::vector<QueueInfo>> KernelNicControl::GetQueues(
    uint32_t ifindex) {
  return netdev_->QueueGet(ifindex);
}

absl::Status KernelNicControl::CheckBindableFd(int fd) {
  if (ClassifyFd(fd) == DmabufKind::kDmabuf) return absl::OkStatus();
  if (fcntl(fd, F_GETFD) < 0) {
    return ErrnoStatus(
        errno, absl::StrCat("fd ", fd,
                            " is not an open file, so not a dma-buf: export "
                            "device memory as a dma-buf (e.g. "
                            "cuMemGetHandleForAddressRange)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("fd ", fd, " is ", DescribeFd(fd),
                   ", not a dma-buf: export device memory as a dma-buf (e.g. "
                   "cuMemGetHandleForAddressRange)"));
}

absl::StatusOr<std::unique_ptr<DevmemBinding>> KernelNicControl::BindRx(
    uint32_t ifindex, int dmabuf_fd, absl::Span<const uint32_t> queues) {
  return NetdevBindRx(ifindex, dmabuf_fd, queues);
}

absl::StatusOr<std::unique_ptr<DevmemBinding>> KernelNicControl::BindTx(
    uint32_t ifindex, int dmabuf_fd) {
  return NetdevBindTx(ifindex, dmabuf_fd);
}

absl::StatusOr<std::unique_ptr<DevmemBinding>> KernelNicControl::AdoptBinding(
    uint32_t ifindex, uint32_t binding_id, bool is_tx, UniqueFd anchor) {
  const std::string what =
      absl::StrCat("adopt ", is_tx ? "TX" : "RX", " binding ", binding_id,
                   " on ifindex ", ifindex);
  if (absl::Status s = CheckGenlSocket(anchor.get_unowned(), what); !s.ok()) {
    return s;
  }
  if (is_tx) {
    // No kernel view of TX bindings (queue-get and page-pool-get show only
    // RX memory providers): check the device exists and trust the rest.
    absl::StatusOr<NetdevDevInfo> dev = netdev_->DevGet(ifindex);
    if (!dev.ok()) return dev.status();
    return std::unique_ptr<DevmemBinding>(
        NetdevBinding::Adopt(std::move(anchor), binding_id, ifindex,
                             /*queues=*/{}, /*is_tx=*/true));
  }
  absl::StatusOr<std::vector<QueueInfo>> queues = netdev_->QueueGet(ifindex);
  if (!queues.ok()) return queues.status();
  std::vector<uint32_t> bound;
  for (const QueueInfo& q : *queues) {
    if (q.type == QueueInfo::Type::kRx && q.dmabuf == binding_id) {
      bound.push_back(q.id);
    }
  }
  if (bound.empty()) {
    return absl::NotFoundError(absl::StrCat(
        what, ": no RX queue reports dmabuf ", binding_id,
        " in netdev queue-get (the binding is gone, or the device is down)"));
  }
  return std::unique_ptr<DevmemBinding>(
      NetdevBinding::Adopt(std::move(anchor), binding_id, ifindex,
                           std::move(bound), /*is_tx=*/false));
}

}  // namespace devmem
