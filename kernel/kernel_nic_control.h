#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernel/ethtool_ioctl.h"
#include "kernel/ethtool_netlink.h"
#include "kernel/netdev_genl.h"
#include "kernel/nic_control.h"
#include "kernel/nic_info.h"

namespace devmem {

// NicControl on the running kernel (the other backend, a simulated devmem NIC
// for demos and tests, is SimulatedNic in daemon/nic/simulated/; the daemon
// picks one in daemon/backend.h):
//   channels, rings, features  ethtool netlink
//   RSS                        ethtool netlink when the kernel registered the
//                              op (RSS_GET 6.2+; RSS_SET, RSS_CREATE_ACT,
//                              RSS_DELETE_ACT 6.17+), else SIOCETHTOOL
//                              (ETHTOOL_GRSSH/SRXFHINDIR/SRSSH)
//   ntuple rules               SIOCETHTOOL only (no netlink op through 6.18)
//   queues, bind-rx, bind-tx   netdev generic netlink
//
// Namespace: the three sockets are opened by Create() in the calling
// thread's network namespace; ifindexes are turned into names (for the
// ioctls) in the calling thread's namespace, so use it from threads in the
// namespace it was created in. Each binding gets a socket of its own, opened
// in the namespace of the thread that asks for it.
//
// Thread-safe: EthtoolNetlink and NetdevGenl serialize under their own
// mutexes, EthtoolIoctl needs none, and no call holds two of them.
// Errors keep the kernel's errno and extack (StatusErrno(), StatusExtack()).
class KernelNicControl final : public NicControl {
 public:
  // Opens the ethtool netlink socket, the netdev socket and the ioctl socket.
  // Fails if any of them cannot be had (e.g. NOT_FOUND for a kernel without
  // the netdev family), naming which.
  static absl::StatusOr<std::unique_ptr<KernelNicControl>> Create();

  std::string BackendName() const override { return "kernel"; }

  absl::StatusOr<ChannelsInfo> GetChannels(uint32_t ifindex) override;
  absl::Status SetChannels(uint32_t ifindex,
                           const ChannelsSet& channels) override;

  absl::StatusOr<RingsInfo> GetRings(uint32_t ifindex) override;
  absl::Status SetRings(uint32_t ifindex, const RingsSet& rings) override;

  absl::StatusOr<FeaturesInfo> GetFeatures(uint32_t ifindex) override;
  absl::Status SetNtuple(uint32_t ifindex, bool enable) override;

  absl::StatusOr<RssInfo> GetRss(uint32_t ifindex, uint32_t context) override;
  // On the ioctl path a non-empty `indir` shorter than the device's table is
  // repeated to fill it when its length divides the table size, which is
  // what RSS_SET does in the kernel (net/ethtool/rss.c
  // rss_set_prep_indir()), so both paths take the same tables.
  absl::Status SetRssIndir(uint32_t ifindex, uint32_t context,
                           absl::Span<const uint32_t> indir) override;
  absl::StatusOr<uint32_t> CreateRssContext(
      uint32_t ifindex, absl::Span<const uint32_t> indir) override;
  absl::Status DeleteRssContext(uint32_t ifindex, uint32_t context) override;

  absl::StatusOr<uint32_t> InsertRule(uint32_t ifindex,
                                      const FlowRule& rule) override;
  absl::Status DeleteRule(uint32_t ifindex, uint32_t location) override;
  absl::StatusOr<RuleTable> ListRules(uint32_t ifindex) override;
  absl::StatusOr<FlowRule> GetRule(uint32_t ifindex,
                                   uint32_t location) override;

  absl::StatusOr<std::vector<QueueInfo>> GetQueues(uint32_t ifindex) override;

  // OK only for a dma-buf (ClassifyFd() == kDmabuf); INVALID_ARGUMENT "fd N
  // is a <kind>, not a dma-buf: ..." otherwise.
  absl::Status CheckBindableFd(int fd) override;

  // Straight to the kernel (NetdevBindRx/NetdevBindTx), without
  // CheckBindableFd(): the caller checks the fd first, and the kernel's own
  // verdict (errno, extack) comes back unchanged.
  absl::StatusOr<std::unique_ptr<DevmemBinding>> BindRx(
      uint32_t ifindex, int dmabuf_fd,
      absl::Span<const uint32_t> queues) override;
  absl::StatusOr<std::unique_ptr<DevmemBinding>> BindTx(uint32_t ifindex,
                                                        int dmabuf_fd) override;

  // `anchor` must be a socket with SO_DOMAIN AF_NETLINK and SO_PROTOCOL
  // NETLINK_GENERIC (else INVALID_ARGUMENT: "fd 5 is a pipe, not a generic
  // netlink socket"). The kernel cannot say which socket owns a binding, so
  // that is all that is checked of the socket itself. RX: the binding's
  // queues are the RX queues whose queue-get `dmabuf` is `binding_id`;
  // NOT_FOUND if there are none (also when the device is down: the dump
  // skips it). TX: the kernel shows TX bindings nowhere, so after the socket
  // check (and dev-get, ENODEV for an unknown ifindex) it is taken on trust.
  absl::StatusOr<std::unique_ptr<DevmemBinding>> AdoptBinding(
      uint32_t ifindex, uint32_t binding_id, bool is_tx,
      UniqueFd anchor) override;

  // Whether RSS changes go over ethtool netlink on this kernel (it has
  // RSS_SET, 6.17+) rather than SIOCETHTOOL. For logs and tests.
  bool RssSetUsesNetlink() const;

 private:
  KernelNicControl(std::unique_ptr<EthtoolNetlink> ethtool,
                   std::unique_ptr<NetdevGenl> netdev,
                   std::unique_ptr<EthtoolIoctl> ioctl)
      : ethtool_(std::move(ethtool)),
        netdev_(std::move(netdev)),
        ioctl_(std::move(ioctl)) {}

  const std::unique_ptr<EthtoolNetlink> ethtool_;
  const std::unique_ptr<NetdevGenl> netdev_;
  const std::unique_ptr<EthtoolIoctl> ioctl_;
};

}  // namespace devmem
