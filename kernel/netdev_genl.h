#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "kernel/genl_family.h"
#include "kernel/genl_msg.h"
#include "kernel/libnl_socket.h"
#include "kernel/nic_control.h"
#include "kernel/nic_info.h"
#include "kernel/unique_fd.h"

namespace devmem {

// netdev DEV_GET reply (NETDEV_A_DEV_*), the part devmem needs.
struct NetdevDevInfo {
  uint32_t ifindex = 0;
  uint64_t xdp_features = 0;  // NETDEV_XDP_ACT_* bits
};

// netdev NAPI_GET entry (NETDEV_A_NAPI_*), the 6.8 attributes.
struct NapiInfo {
  uint32_t id = 0;
  uint32_t ifindex = 0;
  std::optional<uint32_t> irq;  // absent if the driver linked no IRQ
  std::optional<uint32_t> pid;  // the NAPI kthread; only in threaded mode
};

// netdev QSTATS_GET entry (NETDEV_A_QSTATS_*). A counter is absent when the
// driver does not report it (net/core/netdev-genl.c netdev_stat_put() skips
// NETDEV_STAT_NOT_SET), which is different from a reported 0.
struct QstatsInfo {
  uint32_t ifindex = 0;
  // Per-queue scope only; both absent for device totals.
  std::optional<QueueInfo::Type> queue_type;
  std::optional<uint32_t> queue_id;
  std::optional<uint64_t> rx_packets, rx_bytes, tx_packets, tx_bytes;
  // 6.10+ drop/stop counters.
  std::optional<uint64_t> rx_alloc_fail, rx_hw_drops, rx_hw_drop_overruns,
      rx_hw_drop_ratelimits;
  std::optional<uint64_t> tx_hw_drops, tx_hw_drop_errors, tx_hw_drop_ratelimits,
      tx_stop, tx_wake;
};

// netdev PAGE_POOL_GET entry (NETDEV_A_PAGE_POOL_*). A pool whose device is
// gone ("detached", kept until its pages come back) has no ifindex.
struct PagePoolInfo {
  uint64_t id = 0;
  std::optional<uint32_t> ifindex;
  std::optional<uint64_t> napi_id;       // absent if not tied to a NAPI
  std::optional<uint64_t> inflight;      // netmems handed out, not yet returned
  std::optional<uint64_t> inflight_mem;  // bytes those hold
  std::optional<uint64_t> detach_time;   // seconds (boottime) when detached
  std::optional<uint32_t> dmabuf;        // devmem binding id (6.12+)
};

// The "netdev" generic-netlink family (KERNEL_API.md section 1) over one
// libnl-genl-3 socket, in the network namespace of the thread that called
// Open(). Thread-safe: one exchange at a time under an internal mutex.
// Errors carry errno and extack: "netdev queue-get eth0: ... (kernel: ...)".
class NetdevGenl {
 public:
  // NOT_FOUND if the kernel has no netdev family (before 6.3).
  static absl::StatusOr<std::unique_ptr<NetdevGenl>> Open();

  absl::StatusOr<NetdevDevInfo> DevGet(uint32_t ifindex);

  // queue-get dump filtered by ifindex: RX queues, then TX queues. The kernel
  // skips devices that are down (net/core/netdev-genl.c
  // netdev_nl_queue_get_dump_one()), so a down device lists none.
  absl::StatusOr<std::vector<QueueInfo>> QueueGet(uint32_t ifindex);

  // napi-get dump filtered by ifindex (6.8+). A device whose NAPIs are not
  // registered (veth without GRO or XDP) lists none.
  absl::StatusOr<std::vector<NapiInfo>> NapiGet(uint32_t ifindex);

  // qstats-get dump for one device (6.9+): one entry of device totals, or
  // with `per_queue` one per active RX then TX queue. A driver without queue
  // stats ops (veth, lo) fails the dump with EOPNOTSUPP
  // (net/core/netdev-genl.c netdev_nl_qstats_get_dumpit()).
  absl::StatusOr<std::vector<QstatsInfo>> QstatsGet(uint32_t ifindex,
                                                    bool per_queue);

  // page-pool-get dump (6.8+), kept to the pools of `ifindex`. The dump is
  // sent without the kernel-side ifindex filter (newer than 6.12) and
  // filtered here. Pools exist only while a driver uses them (veth: once GRO
  // or XDP is on).
  absl::StatusOr<std::vector<PagePoolInfo>> PagePoolGet(uint32_t ifindex);

  // The family's ops, for runtime feature detection.
  const GenlFamily& family() const { return family_; }
  // bind-rx (op 13, 6.12+) is registered. Says nothing about the driver.
  bool HasBindRx() const;

 private:
  NetdevGenl(std::unique_ptr<LibnlGenlSocket> sock, GenlFamily family)
      : family_(std::move(family)), sock_(std::move(sock)) {}

  const GenlFamily family_;
  absl::Mutex mu_;
  std::unique_ptr<LibnlGenlSocket> sock_ ABSL_GUARDED_BY(mu_);
};

// A binding made by NetdevBindRx/NetdevBindTx, or adopted from another
// process. Owns one fd of the netlink socket that made it: destroying this
// object closes that fd, and once no other copy is open the kernel unbinds
// (net/core/netdev-genl.c netdev_nl_sock_priv_destroy()).
class NetdevBinding : public DevmemBinding {
 public:
  // A binding just made on `sock`, which this object now owns.
  NetdevBinding(std::unique_ptr<LibnlGenlSocket> sock, uint32_t id,
                uint32_t ifindex, std::vector<uint32_t> queues, bool is_tx)
      : sock_(std::move(sock)),
        id_(id),
        ifindex_(ifindex),
        queues_(std::move(queues)),
        is_tx_(is_tx) {}

  // Adopts `netlink_fd`, a copy of the socket that holds binding `id` (made
  // by an earlier process). Takes it as is: the caller has checked it (the
  // kernel cannot say which socket owns a binding). Never sent on, so no
  // libnl state is needed for it.
  static std::unique_ptr<NetdevBinding> Adopt(UniqueFd netlink_fd, uint32_t id,
                                              uint32_t ifindex,
                                              std::vector<uint32_t> queues,
                                              bool is_tx);

  uint32_t id() const override { return id_; }
  uint32_t ifindex() const override { return ifindex_; }
  const std::vector<uint32_t>& queues() const override { return queues_; }
  bool is_tx() const override { return is_tx_; }
  int netlink_fd_unowned() const override;

 private:
  NetdevBinding(UniqueFd netlink_fd, uint32_t id, uint32_t ifindex,
                std::vector<uint32_t> queues, bool is_tx)
      : adopted_fd_(std::move(netlink_fd)),
        id_(id),
        ifindex_(ifindex),
        queues_(std::move(queues)),
        is_tx_(is_tx) {}

  // Exactly one of the two is set: the socket that made the binding here, or
  // the fd adopted from an earlier process.
  std::unique_ptr<LibnlGenlSocket> sock_;
  UniqueFd adopted_fd_;
  uint32_t id_;
  uint32_t ifindex_;
  std::vector<uint32_t> queues_;
  bool is_tx_;
};

// netdev bind-rx (op 13, 6.12+): binds `dmabuf_fd` (borrowed; the kernel
// takes its own reference) to RX `queues` of `ifindex`, on a NEW netlink
// socket in the calling thread's network namespace that the returned binding
// owns. UNIMPLEMENTED "kernel lacks netdev bind-rx (6.12+)" if the family has
// no such op. An empty `queues` is sent as is (the kernel refuses it with
// EINVAL, missing attribute QUEUES). Kernel errors keep errno and extack:
// "netdev bind-rx eth0: Operation not supported (errno 95) (kernel: ...)";
// when the kernel only points at an attribute (NLMSGERR_ATTR_OFFS, no text)
// the extack reads "bad attribute: ifindex" and the like.
absl::StatusOr<std::unique_ptr<DevmemBinding>> NetdevBindRx(
    uint32_t ifindex, int dmabuf_fd, absl::Span<const uint32_t> queues);

// netdev bind-tx (op 15, 6.16+): same, for devmem TX. UNIMPLEMENTED "kernel
// lacks netdev bind-tx (6.16+)" on older kernels.
absl::StatusOr<std::unique_ptr<DevmemBinding>> NetdevBindTx(uint32_t ifindex,
                                                            int dmabuf_fd);

// Request builders (family id passed in; seq and pid stay 0 until sent).
//
// bind-rx, one QUEUES nest per queue (here two):
//
//   nlmsghdr   len=76 | type=family | flags=REQUEST|ACK | seq=0 | pid=0   16
//   genlmsghdr cmd=13 (BIND_RX) | version=1 | reserved=0                   4
//   nlattr     len=8  | NETDEV_A_DMABUF_IFINDEX (1) | u32 ifindex          8
//   nlattr     len=8  | NETDEV_A_DMABUF_FD (3)      | u32 fd               8
//   nlattr     len=20 | NLA_F_NESTED|NETDEV_A_DMABUF_QUEUES (2)            4
//     nlattr   len=8  | NETDEV_A_QUEUE_ID (1)       | u32 queue            8
//     nlattr   len=8  | NETDEV_A_QUEUE_TYPE (3)     | u32 0 (RX)           8
//   nlattr     len=20 | NLA_F_NESTED|NETDEV_A_DMABUF_QUEUES (2)  ...      20
//                                                              total      76
//
// The message holds at most GenlMsg::kMaxBytes (about 200 queues); check
// overflowed().
GenlMsg BuildNetdevBindRx(uint16_t family_id, uint32_t ifindex, int dmabuf_fd,
                          absl::Span<const uint32_t> queues);

// bind-tx:
//
//   nlmsghdr   len=36 | type=family | flags=REQUEST|ACK | seq=0 | pid=0   16
//   genlmsghdr cmd=15 (BIND_TX) | version=1 | reserved=0                   4
//   nlattr     len=8  | NETDEV_A_DMABUF_IFINDEX (1) | u32 ifindex          8
//   nlattr     len=8  | NETDEV_A_DMABUF_FD (3)      | u32 fd               8
//                                                              total      36
GenlMsg BuildNetdevBindTx(uint16_t family_id, uint32_t ifindex, int dmabuf_fd);

// napi-get dump filtered by ifindex:
//
//   nlmsghdr   len=28 | type=family | flags=REQUEST|ACK|DUMP | 0 | 0      16
//   genlmsghdr cmd=11 (NAPI_GET) | version=1 | reserved=0                  4
//   nlattr     len=8  | NETDEV_A_NAPI_IFINDEX (1)   | u32 ifindex          8
//                                                              total      28
GenlMsg BuildNetdevNapiGetDump(uint16_t family_id, uint32_t ifindex);

// qstats-get dump of one device; per queue adds the scope:
//
//   nlmsghdr   len=36 | type=family | flags=REQUEST|ACK|DUMP | 0 | 0      16
//   genlmsghdr cmd=12 (QSTATS_GET) | version=1 | reserved=0                4
//   nlattr     len=8  | NETDEV_A_QSTATS_IFINDEX (1) | u32 ifindex          8
//   nlattr     len=8  | NETDEV_A_QSTATS_SCOPE (4)   | u32 1 (QUEUE)        8
//                                         total 36 (28 without the scope)
GenlMsg BuildNetdevQstatsGetDump(uint16_t family_id, uint32_t ifindex,
                                 bool per_queue);

// page-pool-get dump request: a bare header, no attributes (every pool in the
// namespace; PagePoolGet filters):
//   nlmsghdr   len=20 type=family flags=REQUEST|ACK|DUMP              16
//   genlmsghdr cmd=5 (PAGE_POOL_GET) version=1                         4
//                                                               total 20
GenlMsg BuildNetdevPagePoolGetDump(uint16_t family_id);

// Names the attribute of a bind-rx/bind-tx request `request` that starts at
// byte `offset` (as NLMSGERR_ATTR_OFFS reports it): "ifindex", "fd",
// "queues[1]", "queues[1].id", "queues[1].type"; "" if none starts there.
std::string DescribeBindAttrAtOffset(absl::Span<const uint8_t> request,
                                     uint32_t offset);

// Parsers for one reply message (nlmsghdr first); exposed for tests.
absl::StatusOr<NetdevDevInfo> ParseNetdevDevReply(
    absl::Span<const uint8_t> msg);
// Also returns the queue's ifindex (NETDEV_A_QUEUE_IFINDEX) in `ifindex`.
absl::StatusOr<QueueInfo> ParseNetdevQueueReply(absl::Span<const uint8_t> msg,
                                                uint32_t* ifindex);
absl::StatusOr<NapiInfo> ParseNetdevNapiReply(absl::Span<const uint8_t> msg);
absl::StatusOr<QstatsInfo> ParseNetdevQstatsReply(
    absl::Span<const uint8_t> msg);
absl::StatusOr<PagePoolInfo> ParseNetdevPagePoolReply(
    absl::Span<const uint8_t> msg);
// The binding id (NETDEV_A_DMABUF_ID) of a bind-rx/bind-tx reply; `cmd` is
// the request's command, which the kernel echoes.
absl::StatusOr<uint32_t> ParseNetdevBindReply(absl::Span<const uint8_t> msg,
                                              uint8_t cmd);

}  // namespace devmem
