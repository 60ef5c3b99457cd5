#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/nic/change_recorder.h"
#include "daemon/nic/nic_profile.h"
#include "daemon/nic/queue_pool.h"
#include "kernel/nic_control.h"
#include "kernel/nic_inventory.h"
#include "kernel/pci_topology.h"
#include "proto/devmem/v1/config.pb.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

// One NIC named in nic_profiles and what devmemd did to it: its profile's
// state, the original settings recorded before the first change, the desired
// ones, its devmem queue pool and its per-NIC rule counters.
struct NicRecord {
  devmem::v1::NicProfile profile;
  std::string name;
  uint32_t ifindex = 0;
  devmem::v1::ProfileState state = devmem::v1::PROFILE_STATE_UNMANAGED;
  std::string reason;
  std::vector<Capability> missing;
  std::optional<ProfilePlan> plan;
  devmem::v1::NicSettings original;
  devmem::v1::NicSettings desired;
  bool recorded = false;
  QueuePool pool;  // empty unless applied
  // Why the NIC no longer matches its profile ("" if it does).
  std::string degraded;
  uint32_t rule_quota = 0;
  // For the metrics.
  uint64_t rules_installed = 0;
  std::map<std::string, uint64_t> rules_removed;
  std::map<std::string, uint64_t> rules_failed;
};

// Where a binding should go: a NIC by name, or the applied NIC nearest to a
// GPU's PCI address.
struct NicTarget {
  std::string nic;
  std::string gpu_pci_address;
};

// The NICs named in the config and their profiles. Probes each NIC, records
// its original settings (file and journal) before the first change, applies
// the profile, puts the record back on restore, and reports original,
// desired and actual settings and drift. Owns the NicRecords and the
// original-state files; knows nothing of leases (NicManager releases them
// before a restore). Thread-compatible: NicManager's lock guards it.
class NicProfiles {
 public:
  struct Options {
    const devmem::v1::DaemonConfig* config = nullptr;  // outlives this
    NicControl* control = nullptr;                     // outlives this
    NicInventory* inventory = nullptr;                 // outlives this
    ChangeRecorder* recorder = nullptr;                // outlives this
    // Where GPUs and NICs sit on PCIe; null: /sys.
    const PciTopology* topology = nullptr;
  };
  explicit NicProfiles(const Options& options);

  const std::vector<std::unique_ptr<NicRecord>>& all() const { return nics_; }
  // The NIC named `name`, or null; every profile's name.
  NicRecord* Find(absl::string_view name) const;
  std::vector<std::string> Names() const;
  const PciTopology& topology() const {
    return options_.topology != nullptr ? *options_.topology : sys_topology_;
  }
  std::string RecordPath(absl::string_view nic) const {
    return store_.PathFor(nic);
  }

  // Probes, records and applies `nic`'s profile. Never fails as a whole: a
  // NIC that cannot do devmem is NOT_CAPABLE and untouched, one that fails
  // midway is FAILED and rolled back. Returns the line for the log.
  std::string Apply(NicRecord& nic);
  // Puts back the recorded settings of `nic`, which must hold no leases and
  // no bound queue; `bindings` and `rules` (released before) go into the
  // reason. RESTORED with the record deleted, or FAILED with the record kept
  // and `*status` the kernel's refusal. Returns the line for the log.
  std::string PutBack(NicRecord& nic, uint32_t bindings, uint32_t rules,
                      absl::Status* status);
  // The applied NIC a binding goes to. INVALID_ARGUMENT (neither or both
  // named), NOT_FOUND (no such NIC or GPU), FAILED_PRECONDITION (unmanaged,
  // not ready, nothing near the GPU).
  absl::StatusOr<NicRecord*> Resolve(const NicTarget& target);

  // Original, desired and actual settings, pool and free queues, kernel
  // rules and bound queues; the leases' counts are the caller's to add.
  devmem::v1::NicState State(const NicRecord& nic) const;
  // A NIC without a profile, as unmanaged; NOT_FOUND if it does not exist.
  absl::StatusOr<devmem::v1::NicState> Unmanaged(const std::string& name) const;
  // Compares an applied NIC with its profile (link, channels, header split)
  // and keeps the answer in nic.degraded: "" if it still matches.
  std::string CheckDrift(NicRecord& nic);
  // Pool queues of `nic` the kernel shows bound to a dma-buf right now.
  absl::flat_hash_set<uint32_t> KernelBound(const NicRecord& nic) const;
  // The `busy` set for taking free queues of `nic`'s pool: KernelBound,
  // asked only while the pool has queues that may still be bound
  // (QueuePool::has_unchecked), and settling the rest. A netlink queue
  // dump per binding made 1000 bindings cost O(pool) each.
  absl::flat_hash_set<uint32_t> BusyQueues(NicRecord& nic) const;

 private:
  // Before the first change: the original settings of `nic`, from an earlier
  // run's record file, the journal, or the NIC itself, saved to a file and
  // journaled. The error says which step failed.
  absl::Status RecordOriginal(NicRecord& nic);
  // The RX queues of `queues` bound to a dma-buf.
  static absl::flat_hash_set<uint32_t> BoundRxQueues(
      const std::vector<QueueInfo>& queues);
  // The end of Apply for a header_split_only profile: PARTIAL, no pool.
  std::string FinishPartial(NicRecord& nic);

  const Options options_;
  const PciTopology sys_topology_;
  OriginalStateStore store_;
  std::vector<std::unique_ptr<NicRecord>> nics_;
};

// Why a rule went (NicRecord::rules_removed) or a steering request was
// refused (NicRecord::rules_failed): the metrics' cause label.
namespace rule_cause {
// The client released it or its binding; its session closed (or its grace
// ended); an admin restored the NIC; recovery found it stale or orphaned.
inline constexpr char kReleased[] = "released";
inline constexpr char kSessionClosed[] = "session_closed";
// An operator's drain released it at its deadline.
inline constexpr char kDrain[] = "drain";
inline constexpr char kRestore[] = "restore";
inline constexpr char kRecovery[] = "recovery";
// A bad request (unknown or TX binding, no port); the flow is another
// binding's; a quota; the kernel or NIC said no (or the NIC is not ready);
// the journal could not record it.
inline constexpr char kInvalid[] = "invalid";
inline constexpr char kConflict[] = "conflict";
inline constexpr char kQuota[] = "quota";
inline constexpr char kKernel[] = "kernel";
inline constexpr char kJournal[] = "journal";
}  // namespace rule_cause

// "applied", "not devmem-capable", ... for messages.
std::string ProfileStateName(devmem::v1::ProfileState s);

}  // namespace devmem
