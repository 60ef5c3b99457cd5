#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "daemon/nic/change_recorder.h"
#include "daemon/nic/lease_table.h"
#include "daemon/nic/nic_profiles.h"
#include "kernel/nic_control.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/journal.pb.h"

namespace devmem {

// Reconciles the journal of an earlier run with what the kernel reports, the
// truth, once the profiles are applied again (docs/PROTOCOL.md section 8):
// 1. bindings: re-adopted with their stored anchor, awaiting their workload
//    if the kernel still shows them, else dropped;
// 2. rules: kept if the kernel has them as recorded, unfinished ones undone;
// 3. orphans: rules steering to the pool or a context of ours that no record
//    claims are removed;
// 4. sessions still holding bindings are handed back to wait for Resume.
// One use: construct, Run(). Works on NicManager's pieces under its lock.
class LeaseRecovery {
 public:
  // `removed_cause` is the metric label for rules it removes.
  LeaseRecovery(NicProfiles& profiles, LeaseTable& leases, NicControl& control,
                ChangeRecorder& recorder, const char* removed_cause)
      : profiles_(profiles),
        leases_(leases),
        control_(control),
        recorder_(recorder),
        removed_cause_(removed_cause) {}

  // Fills `detached` (may be null) with the sessions to wait for; returns
  // the report, one line per notable event and a summary line last.
  std::vector<std::string> Run(
      const devmem::v1::JournalState& state,
      absl::flat_hash_map<uint64_t, UniqueFd> stored,
      std::vector<devmem::v1::JournaledSession>* detached);

 private:
  void RecoverBinding(const devmem::v1::JournalState& state, uint64_t handle,
                      const devmem::v1::JournaledBinding& rec,
                      absl::flat_hash_map<uint64_t, UniqueFd>& stored);
  void RecoverRule(uint64_t id, const devmem::v1::JournaledRule& rec);
  void RemoveOrphans(NicRecord& nic);
  // The binding's RSS context, also one created but never recorded (found
  // by its indirection table).
  void DeleteContext(NicRecord* nic, uint64_t handle,
                     const devmem::v1::JournaledBinding& rec);
  // Whether the kernel still shows RX binding `kernel_id` on `nic`.
  bool StillBound(const NicRecord& nic, uint32_t kernel_id);
  void Forget(uint64_t handle, const std::string& why);
  void ForgetRule(uint64_t id);

  NicProfiles& profiles_;
  LeaseTable& leases_;
  NicControl& control_;
  ChangeRecorder& recorder_;
  const char* const removed_cause_;
  std::vector<std::string> report_;
  // One queue dump per NIC, however many bindings it had.
  absl::flat_hash_map<uint32_t, absl::StatusOr<std::vector<QueueInfo>>> queues_;
  // Rule locations the journal accounts for, per NIC.
  absl::flat_hash_map<std::string, absl::flat_hash_set<uint32_t>> claimed_;
  uint32_t adopted_ = 0;
  uint32_t awaiting_ = 0;
  uint32_t kept_ = 0;
  uint32_t dropped_ = 0;
  uint32_t undone_ = 0;
  uint32_t orphans_ = 0;
};

}  // namespace devmem
