#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/nic/change_recorder.h"
#include "daemon/nic/cordon.h"
#include "daemon/nic/lease_table.h"
#include "daemon/nic/nic_profiles.h"
#include "daemon/nic/reservation_table.h"
#include "daemon/nic/reserver.h"
#include "daemon/state/anchor_store.h"
#include "daemon/state/event_log.h"
#include "kernel/nic_control.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/config.pb.h"
#include "proto/devmem/v1/devmem.pb.h"
#include "proto/devmem/v1/journal.pb.h"

namespace devmem {

// Makes and ends bindings: takes queues from a NIC's pool, journals the
// intent, issues bind-rx/bind-tx, records the outcome and the binding's
// lease; on release removes its rules, its RSS context and the kernel
// binding, and gives its queues back. Also the binding anchors: checks one a
// workload returns, copies ours out, and says which are in workloads' hands.
// It owns no state: the profiles, leases and journal are NicManager's, whose
// lock is held around every call. Errors: see NicManager.
class Binder {
 public:
  struct Deps {
    const devmem::v1::DaemonConfig* config = nullptr;
    NicControl* control = nullptr;
    AnchorStore* anchors = nullptr;  // may be null
    ChangeRecorder* recorder = nullptr;
    NicProfiles* profiles = nullptr;
    LeaseTable* leases = nullptr;
    // The session layer's answers (NicManager::Options); may be empty.
    std::function<std::optional<devmem::v1::JournaledSession>(uint64_t)>
        session_record;
    std::function<void(uint64_t session, uint64_t handle)>
        withdraw_anchor_ticket;
    std::function<bool(uint64_t session, uint64_t handle)> anchor_handed_out;
    // Reservations whose tokens bindings may redeem; may be null (then a
    // token is refused).
    Reserver* reserver = nullptr;
    ReservationTable* reservations = nullptr;
    // Refuses new unreserved bindings while cordoned; may be null.
    const CordonGate* cordon = nullptr;
    // Where binding events go; may be null.
    EventLog* events = nullptr;
  };
  explicit Binder(Deps deps) : d_(std::move(deps)) {}

  // With a `reservation_token`, the queues come from that reservation
  // (Reserver::Redeem says why a token is refused); without one, from the
  // free pool, unless require_reservation is set.
  //
  // With `durable_at`, the journal records (the session's, the binding's
  // intent and outcome) are written but not waited for: the caller must
  // ChangeRecorder::AwaitDurable(*durable_at) before it answers, and
  // release the binding if that fails (group commit across concurrent
  // binds; a binding dies with devmemd's netlink socket unless its anchor
  // was shared, so nothing outlives a crash unrecorded). Without it, each
  // intent is flushed before the change, as before.
  absl::StatusOr<devmem::v1::Binding> BindRx(
      uint64_t session, const NicTarget& target, uint32_t queue_count,
      UniqueFd dmabuf, absl::string_view reservation_token = "",
      uint64_t* durable_at = nullptr);
  absl::StatusOr<devmem::v1::Binding> BindTx(
      uint64_t session, const NicTarget& target, UniqueFd dmabuf,
      absl::string_view reservation_token = "", uint64_t* durable_at = nullptr);
  // Releases binding `handle` (any session's); returns the rules removed,
  // counted under `cause` (a rule_cause constant).
  uint32_t Release(uint64_t handle, const char* cause);
  // Releases everything `session` holds. Idempotent.
  void ReleaseSession(uint64_t session, const char* cause);
  // FAILED_PRECONDITION naming the bindings on `nic` whose anchor a workload
  // holds (RestoreNic cannot end them); OK if there are none.
  absl::Status CheckNoHeldAnchors(const NicRecord& nic);
  absl::StatusOr<uint32_t> ReturnAnchor(uint64_t session, uint64_t handle,
                                        UniqueFd anchor);
  absl::StatusOr<UniqueFd> DupAnchor(uint64_t session, uint64_t handle);

 private:
  // The live reservation `token` names for `session` (null without a token),
  // or why there is none; FAILED_PRECONDITION without a token when
  // require_reservation is set.
  absl::StatusOr<ReservationRecord*> RedeemFor(uint64_t session,
                                               absl::string_view token,
                                               absl::string_view what);
  void Publish(const char* type, const BindingLease& b) const;
  // The uid that owns `session` (0 if unknown): the leases know it, or, for
  // a session's first binding, the session layer.
  uint32_t SessionUid(uint64_t session) const;
  // Gives a binding's queues back: to its reservation while that lives,
  // else to the free pool.
  void GiveBackQueues(NicRecord& nic, const std::string& reservation,
                      uint64_t handle, const std::vector<uint32_t>& queues);
  // The leases' quotas for one more binding of `session`.
  absl::Status CheckBindQuota(uint64_t session) const;
  // Journals the session's owner once, with its first lease.
  absl::Status JournalSession(uint64_t session, uint64_t* durable_at);
  // An intent: flushed now, or (with `durable_at`) written, its flush
  // started, and its sequence number kept in *durable_at.
  absl::Status RecordIntent(const devmem::v1::JournalEntry& entry,
                            uint64_t* durable_at);
  // Records a binding the kernel just made (undoing it if the record cannot
  // be written), shares its anchor, and takes its queues from the pool.
  absl::StatusOr<devmem::v1::Binding> AdoptNew(BindingLease b, NicRecord& nic);

  const Deps d_;
};

// A binding as the API shows it.
devmem::v1::Binding BindingProto(const BindingLease& b);

// Maps a kernel refusal (a status from NicControl carrying an errno) to the
// code devmemd reports: FAILED_PRECONDITION with the kernel's own text and
// `remedy`; ENOSPC is RESOURCE_EXHAUSTED, ENODEV NOT_FOUND. Statuses without
// an errno (devmemd's own checks) pass through unchanged.
absl::Status KernelRefusal(const absl::Status& status,
                           absl::string_view remedy);

// The remedy devmemd suggests when the kernel refuses bind-rx on `nic`.
std::string BindRxRemedy(const absl::Status& status, absl::string_view nic);

}  // namespace devmem
