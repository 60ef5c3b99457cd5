#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "kernel/genl_family.h"
#include "kernel/libnl_socket.h"
#include "kernel/nic_info.h"

namespace devmem {

// netdev DEV_GET reply (NETDEV_A_DEV_*), the part devmem needs.
struct NetdevDevInfo {
  uint32_t ifindex = 0;
  uint64_t xdp_features = 0;  // NETDEV_XDP_ACT_* bits
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

// Parsers for one reply message (nlmsghdr first); exposed for tests.
absl::StatusOr<NetdevDevInfo> ParseNetdevDevReply(
    absl::Span<const uint8_t> msg);
// Also returns the queue's ifindex (NETDEV_A_QUEUE_IFINDEX) in `ifindex`.
absl::StatusOr<QueueInfo> ParseNetdevQueueReply(absl::Span<const uint8_t> msg,
                                                uint32_t* ifindex);

}  // namespace devmem
