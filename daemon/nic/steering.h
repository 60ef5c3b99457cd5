#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/nic/change_recorder.h"
#include "daemon/nic/lease_table.h"
#include "daemon/nic/nic_profiles.h"
#include "kernel/nic_control.h"
#include "kernel/nic_info.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

// Steers flows to bindings: checks the request and the quotas, journals the
// rule's intent, inserts the ntuple rule (a 5-tuple the NIC refuses falls
// back to the 3-tuple), records it, and removes rules again. Idempotent per
// tuple and binding. It owns no state (see Binder); NicManager's lock is held
// around every call.
class Steering {
 public:
  struct Deps {
    NicControl* control = nullptr;
    ChangeRecorder* recorder = nullptr;
    NicProfiles* profiles = nullptr;
    LeaseTable* leases = nullptr;
  };
  explicit Steering(const Deps& deps) : d_(deps) {}

  // On failure `*nic` (if the binding's NIC is known) and `*cause` (a
  // rule_cause constant) say where and why, for the metrics. On success
  // the rule is in the NIC and its one record is staged in the journal
  // (group write) but maybe not durable yet: `*durable_at` is the journal
  // sequence number to AwaitDurable before answering (group commit). The
  // rule steers to the devmem pool, so recovery removes it as an orphan if
  // a crash loses its record. `start_flush` false leaves the write and the
  // flush to the caller's wait (a batch).
  absl::StatusOr<devmem::v1::FlowRule> Steer(uint64_t session, uint64_t handle,
                                             const FlowTuple& tuple,
                                             NicRecord** nic,
                                             const char** cause,
                                             uint64_t* durable_at,
                                             bool start_flush = true);
  // NOT_FOUND if no rule of the binding is at `location`.
  absl::Status Remove(uint64_t session, uint64_t handle, uint32_t location);

 private:
  // Steer() once the request passed its checks: insert (with the 3-tuple
  // fallback), then stage its record.
  absl::StatusOr<devmem::v1::FlowRule> Install(
      uint64_t session, BindingLease& b, NicRecord& nic, const FlowTuple& tuple,
      const char** cause, uint64_t* durable_at, bool start_flush);

  const Deps d_;
};

// A rule as the API shows it.
devmem::v1::FlowRule RuleProto(const NicRecord& nic, const RuleLease& r);

}  // namespace devmem
