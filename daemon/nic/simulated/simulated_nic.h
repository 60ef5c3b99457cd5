#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernel/nic_control.h"
#include "kernel/nic_info.h"
#include "kernel/unique_fd.h"

namespace devmem {

// One simulated devmem-capable NIC: a combined-channel device (like bnxt,
// mlx5, fbnic) whose RX queue count is combined_count. Defaults are bnxt-like:
// a non-zero hds_thresh and tcp-data-split left at "auto", so a caller must
// set both before a bind succeeds (KERNEL_API.md section 3, RINGS).
struct SimulatedNicSpec {
  std::string name;  // < IFNAMSIZ; may name a real link to overlay it
  uint32_t ifindex = 0;
  uint32_t combined_max = 16;
  uint32_t combined_count = 8;
  uint32_t rss_table_size = 128;
  uint32_t rule_table_size = 256;
  // RX_CLS_LOC_SPECIAL in GRXCLSRLCNT: the driver picks a rule's slot (lowest
  // free); otherwise the slot is searched as ethtool(8) does (highest free).
  bool driver_picks_location = false;
  uint32_t hds_thresh_max = 1024;
  uint32_t hds_thresh = 256;
  TcpDataSplit tcp_data_split = TcpDataSplit::kUnknown;
  bool ntuple_active = false;
  // Turning rx-ntuple-filter off deletes every rule, as bnxt does (and as
  // 6.13-6.17 ncdevmem relies on with "-K ntuple off/on"; KERNEL_API.md
  // section 4). false keeps the rules, like drivers that only stop matching.
  bool ntuple_off_flushes_rules = true;
};

// The calls of SimulatedNic that FailNext() can make fail.
enum class SimOp {
  kGetChannels,
  kSetChannels,
  kGetRings,
  kSetRings,
  kGetFeatures,
  kSetNtuple,
  kGetRss,
  kSetRssIndir,
  kCreateRssContext,
  kDeleteRssContext,
  kInsertRule,
  kDeleteRule,
  kListRules,
  kGetQueues,
  kBindRx,
  kBindTx,
  kAdoptBinding,
};

// The simulated devmem NIC backend (`devmemd --nic_backend=simulated`, and the
// success paths of daemon tests that no hardware here can reach). The other
// NicControl backend, the real kernel, is KernelNicControl in
// kernel/kernel_nic_control.h; daemon/backend.h picks one. It keeps
// per-NIC channels, rings, features, RSS tables and contexts, ntuple rules and
// bindings in memory and enforces the kernel's rules for them with the
// kernel's errno and, where the kernel sends one, its extack text verbatim
// (StatusExtack()); explanations the kernel would not send go into the
// message's "what" part instead, so the extack stays comparable.
//
// Deliberate simplifications: only combined channels exist (rx/tx/other max
// are 0, as for a combined-only driver); there is no XDP, AF_XDP or io_uring;
// the device is always up. Memory for bindings may be a dma-buf or a memfd
// (a memfd stands for device memory here).
//
// Persistence (Options::state_dir set): NIC state outlives the process, as
// hardware does. After every change a NIC's state is written (temporary file
// + rename) to <state_dir>/<nic>.simnic, and Create() takes it back. Each
// binding gets an anchor file <state_dir>/<nic>.binding-<id>.anchor, opened
// and flock(LOCK_EX)ed once: that open file description plays the binding's
// netlink socket. netlink_fd_unowned() is its fd, and like the real socket
// the binding lives while any process holds an fd of it (dup(), fork(),
// SCM_RIGHTS). The simulated kernel notices a binding is gone lazily: calls
// whose answer depends on bindings (GetQueues, BindRx, BindTx, SetChannels,
// SetRings, AdoptBinding, GetCounters, LiveBindings, Create) first probe each
// anchor (open anew, flock(LOCK_EX|LOCK_NB)); one nobody holds is unbound:
// its queues are freed and its anchor file deleted. Destroying a Binding
// probes its own anchor at once. Only one SimulatedNic (in any process) may
// use a state_dir at a time. Put it on a tmpfs (e.g. <runtime_dir>/simnic) so
// that a reboot forgets it, as the hardware would.
//
// Thread-safe: all state sits under one mutex shared with the bindings. A
// binding may outlive the SimulatedNic that made it: destroying it later is
// safe and simply frees its queues in the (still shared) state.
class SimulatedNic final : public NicControl {
 public:
  struct Options {
    // Empty: state lives in memory only and dies with this object (and
    // bindings with their Binding objects). Otherwise the directory for the
    // saved state and binding anchors; Create() makes it (mode 0700) if
    // missing.
    std::string state_dir;
  };

  // INVALID_ARGUMENT for a bad spec: empty, too long or duplicate name,
  // ifindex 0 or duplicate, combined_count not in [1, combined_max], empty
  // RSS or rule table, hds_thresh > hds_thresh_max. With a state_dir, the
  // error of making it or of writing the initial state files. A saved state
  // that cannot be used (unreadable, other name, ifindex or spec limits) is
  // not an error: that NIC starts from its spec and load_report() says why.
  static absl::StatusOr<std::unique_ptr<SimulatedNic>> Create(
      std::vector<SimulatedNicSpec> specs, const Options& options = {});
  ~SimulatedNic() override;

  SimulatedNic(const SimulatedNic&) = delete;
  SimulatedNic& operator=(const SimulatedNic&) = delete;

  std::string BackendName() const override { return "simulated"; }

  absl::StatusOr<ChannelsInfo> GetChannels(uint32_t ifindex) override;
  // Like the kernel, refuses a count <= the highest bound RX queue + 1 (so
  // binding queue 3 forbids 4 channels too), and a count <= the highest queue
  // of a user-set main RSS table, any RSS context or any ntuple rule. The
  // default main table follows the new count instead.
  absl::Status SetChannels(uint32_t ifindex,
                           const ChannelsSet& channels) override;
  absl::StatusOr<RingsInfo> GetRings(uint32_t ifindex) override;
  absl::Status SetRings(uint32_t ifindex, const RingsSet& rings) override;
  absl::StatusOr<FeaturesInfo> GetFeatures(uint32_t ifindex) override;
  absl::Status SetNtuple(uint32_t ifindex, bool enable) override;
  absl::StatusOr<RssInfo> GetRss(uint32_t ifindex, uint32_t context) override;
  absl::Status SetRssIndir(uint32_t ifindex, uint32_t context,
                           absl::Span<const uint32_t> indir) override;
  absl::StatusOr<uint32_t> CreateRssContext(
      uint32_t ifindex, absl::Span<const uint32_t> indir) override;
  absl::Status DeleteRssContext(uint32_t ifindex, uint32_t context) override;
  absl::StatusOr<uint32_t> InsertRule(uint32_t ifindex,
                                      const FlowRule& rule) override;
  absl::Status DeleteRule(uint32_t ifindex, uint32_t location) override;
  absl::StatusOr<RuleTable> ListRules(uint32_t ifindex) override;
  absl::StatusOr<std::vector<QueueInfo>> GetQueues(uint32_t ifindex) override;
  // Accepts dma-bufs and memfds.
  absl::Status CheckBindableFd(int fd) override;
  // The binding holds a duplicate of `dmabuf_fd`, as the kernel holds a
  // reference on the dma-buf. As in net_devmem_bind_dmabuf(), the id is taken
  // before the queues are checked, so a bind that fails on a queue still
  // advances the cyclic id counter (a FailNext() fault does not).
  absl::StatusOr<std::unique_ptr<DevmemBinding>> BindRx(
      uint32_t ifindex, int dmabuf_fd,
      absl::Span<const uint32_t> queues) override;
  absl::StatusOr<std::unique_ptr<DevmemBinding>> BindTx(uint32_t ifindex,
                                                        int dmabuf_fd) override;
  // `anchor` must be an fd of the open file description that holds the
  // binding's anchor (same file, and it holds the flock); INVALID_ARGUMENT
  // otherwise, or if the binding is of the other direction. NOT_FOUND if no
  // binding `binding_id` is alive on the NIC. FAILED_PRECONDITION without a
  // state_dir: nothing outlives a process then. The adopted binding does not
  // hold the memory (the real kernel does; the simulation cannot).
  absl::StatusOr<std::unique_ptr<DevmemBinding>> AdoptBinding(
      uint32_t ifindex, uint32_t binding_id, bool is_tx,
      UniqueFd anchor) override;

  // --- Not part of NicControl: for `nic show`, the inventory and tests ---

  // The rule installed at `location` (its location filled in); ENOENT if none.
  absl::StatusOr<FlowRule> GetRule(uint32_t ifindex, uint32_t location);

  // What is installed on one NIC right now.
  struct Counters {
    uint32_t rules = 0;
    uint32_t rss_contexts = 0;
    uint32_t rx_bindings = 0;
    uint32_t tx_bindings = 0;
    uint32_t bound_rx_queues = 0;
    // The main RSS table was written by a user (IFF_RXFH_CONFIGURED) rather
    // than being the default spread.
    bool rss_configured = false;
    // Calls that changed this NIC's state (bindings included), ever; with
    // a state_dir, across processes.
    uint64_t changes = 0;
    // Changes that could not be saved to the state_dir (the change itself
    // took effect); persist_error() says why.
    uint64_t save_failures = 0;
  };
  absl::StatusOr<Counters> GetCounters(uint32_t ifindex) const;
  // Live bindings on all NICs.
  size_t LiveBindings() const;

  // Makes the next call of `op` (on any NIC) return `status` before it looks
  // at its arguments or changes anything. Calls queue up: N calls fail the
  // next N. An OK status is ignored.
  void FailNext(SimOp op, absl::Status status);

  // The specs as given to Create() (current values are read with the Get
  // calls). Immutable, so safe to read without locking.
  const std::vector<SimulatedNicSpec>& specs() const { return specs_; }
  // What Create() did with the state_dir, one "<nic>: ..." part per NIC
  // joined with "; " (restored, or why it started from the spec, and the
  // bindings found gone). "" without a state_dir. Immutable.
  const std::string& load_report() const { return load_report_; }
  // The last failure to save state (save_failures in Counters), "" if none.
  std::string persist_error() const;
  // The spec named `name`, or null.
  const SimulatedNicSpec* FindSpec(absl::string_view name) const;

 private:
  struct State;   // all mutable state; shared with the bindings
  class Binding;  // the DevmemBinding handed out

  SimulatedNic(std::vector<SimulatedNicSpec> specs,
               std::shared_ptr<State> state, std::string load_report);

  const std::vector<SimulatedNicSpec> specs_;
  const std::shared_ptr<State> state_;
  const std::string load_report_;
};

}  // namespace devmem
