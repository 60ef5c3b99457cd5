#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernel/nic_info.h"
#include "kernel/unique_fd.h"

namespace devmem {

// A devmem binding made by netdev bind-rx or bind-tx (or adopted with
// NicControl::AdoptBinding). The kernel has no unbind command: a binding lives
// while any fd of the netlink socket that made it is open, in any process
// (dup()s and SCM_RIGHTS copies count), and closing the last one unbinds it
// and restarts its queues with normal pages (KERNEL_API.md section 1, "Binding
// lifetime"). This object owns one such fd; destroying it unbinds only if no
// copy was handed out. Not copyable; not thread-safe.
class DevmemBinding {
 public:
  virtual ~DevmemBinding() = default;
  // The kernel's binding id (>= 1), as seen in queue-get `dmabuf` and in each
  // RX cmsg's dmabuf_id.
  virtual uint32_t id() const = 0;
  virtual uint32_t ifindex() const = 0;
  // RX queues bound (empty for a TX binding).
  virtual const std::vector<uint32_t>& queues() const = 0;
  virtual bool is_tx() const = 0;
  // The fd of the netlink socket that holds the binding (for the simulated
  // backend with a state dir, its anchor file), or -1 if the backend has none
  // (simulated, in memory). Borrowed: for sharing with SCM_RIGHTS or dup()
  // only; every copy keeps the binding alive.
  virtual int netlink_fd_unowned() const = 0;
};

// What kind of memory an fd passed for a binding is.
enum class DmabufKind {
  kDmabuf,  // fstatfs f_type == DMA_BUF_MAGIC
  kMemfd,   // a memfd (simulated device memory; only the simulated backend)
  kOther,   // anything else: socket, pipe, regular file, ...
};

// Every NIC mutation and read devmemd needs, on one interface, so that the
// daemon's profile and lease logic runs unchanged against the real kernel
// (KernelNicControl: ethtool netlink, SIOCETHTOOL, netdev genl) and against
// the simulated devmem NIC (SimulatedNic), which enforces the kernel rules of
// KERNEL_API.md.
//
// NICs are named by ifindex. Errors carry the kernel's errno and extack text
// (ErrnoStatus), so callers can map them: StatusErrno() == EOPNOTSUPP means
// the NIC or driver lacks the feature. Implementations are thread-safe.
class NicControl {
 public:
  virtual ~NicControl() = default;

  // "kernel" or "simulated": shown to users.
  virtual std::string BackendName() const = 0;

  virtual absl::StatusOr<ChannelsInfo> GetChannels(uint32_t ifindex) = 0;
  virtual absl::Status SetChannels(uint32_t ifindex,
                                   const ChannelsSet& channels) = 0;

  virtual absl::StatusOr<RingsInfo> GetRings(uint32_t ifindex) = 0;
  virtual absl::Status SetRings(uint32_t ifindex, const RingsSet& rings) = 0;

  virtual absl::StatusOr<FeaturesInfo> GetFeatures(uint32_t ifindex) = 0;
  // Turns "rx-ntuple-filter" on or off, changing no other feature.
  // FAILED_PRECONDITION if the kernel accepted the request but the feature
  // did not change (it is fixed on this device).
  virtual absl::Status SetNtuple(uint32_t ifindex, bool enable) = 0;

  // RSS of `context` (0 = the main table).
  virtual absl::StatusOr<RssInfo> GetRss(uint32_t ifindex,
                                         uint32_t context) = 0;
  // Writes the indirection table of `context`; an empty `indir` resets the
  // main table to the driver's default spread.
  virtual absl::Status SetRssIndir(uint32_t ifindex, uint32_t context,
                                   absl::Span<const uint32_t> indir) = 0;
  // Creates an RSS context spreading over `indir`; returns its id.
  virtual absl::StatusOr<uint32_t> CreateRssContext(
      uint32_t ifindex, absl::Span<const uint32_t> indir) = 0;
  virtual absl::Status DeleteRssContext(uint32_t ifindex, uint32_t context) = 0;

  // ntuple rules. Insert returns the location used.
  virtual absl::StatusOr<uint32_t> InsertRule(uint32_t ifindex,
                                              const FlowRule& rule) = 0;
  virtual absl::Status DeleteRule(uint32_t ifindex, uint32_t location) = 0;
  // Locations of every rule installed on the NIC (by anyone), and the table
  // size the driver reports (0 if it reports none).
  struct RuleTable {
    std::vector<uint32_t> locations;
    uint32_t table_size = 0;
  };
  virtual absl::StatusOr<RuleTable> ListRules(uint32_t ifindex) = 0;
  // The rule at `location` (its location filled in); an ENOENT status if
  // none is installed there. Recovery compares it with the journal.
  virtual absl::StatusOr<FlowRule> GetRule(uint32_t ifindex,
                                           uint32_t location) = 0;

  // netdev queue-get for the NIC (RX then TX).
  virtual absl::StatusOr<std::vector<QueueInfo>> GetQueues(
      uint32_t ifindex) = 0;

  // Says whether `fd` is memory this backend can bind: the kernel backend
  // accepts only kDmabuf. INVALID_ARGUMENT naming the kind otherwise.
  virtual absl::Status CheckBindableFd(int fd) = 0;

  // netdev bind-rx of `dmabuf_fd` (borrowed) to `queues` on a dedicated
  // netlink socket owned by the returned binding.
  virtual absl::StatusOr<std::unique_ptr<DevmemBinding>> BindRx(
      uint32_t ifindex, int dmabuf_fd, absl::Span<const uint32_t> queues) = 0;
  // netdev bind-tx (6.16+).
  virtual absl::StatusOr<std::unique_ptr<DevmemBinding>> BindTx(
      uint32_t ifindex, int dmabuf_fd) = 0;

  // Takes over a binding that outlived the process that made it: `anchor` is
  // a copy of the fd that holds binding `binding_id` on `ifindex` (its netlink
  // socket; from the systemd fd store or handed back by the workload). Checks
  // that it really is: INVALID_ARGUMENT if `anchor` is not such an fd (say what
  // it is), NOT_FOUND if no binding `binding_id` is alive on the NIC. The
  // returned binding owns `anchor`; its queues come from the kernel's view.
  virtual absl::StatusOr<std::unique_ptr<DevmemBinding>> AdoptBinding(
      uint32_t ifindex, uint32_t binding_id, bool is_tx, UniqueFd anchor) = 0;
};

// Classifies `fd` with fstatfs(2): DMA_BUF_MAGIC is kDmabuf; memfds (their
// /proc/self/fd link starts with "/memfd:") are kMemfd.
DmabufKind ClassifyFd(int fd);
std::string DmabufKindName(DmabufKind kind);

// What `fd` is, in words with an article, for error messages that must name
// what a caller passed instead of what was wanted: "a pipe", "a dma-buf",
// "a memfd", "a socket (AF_INET6, TCP)", "a socket (AF_NETLINK,
// NETLINK_ROUTE)", "a regular file (/path)", "a character device
// (/dev/null)", or "not an open file (Bad file descriptor)".
std::string DescribeFd(int fd);

}  // namespace devmem
