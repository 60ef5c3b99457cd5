#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "daemon/base/clock.h"
#include "daemon/nic/binder.h"
#include "daemon/nic/change_recorder.h"
#include "daemon/nic/cordon.h"
#include "daemon/nic/lease_table.h"
#include "daemon/nic/nic_profile.h"
#include "daemon/nic/nic_profiles.h"
#include "daemon/nic/profile_changer.h"
#include "daemon/nic/queue_pool.h"
#include "daemon/nic/reservation_table.h"
#include "daemon/nic/reserver.h"
#include "daemon/nic/restorer.h"
#include "daemon/nic/steering.h"
#include "daemon/state/anchor_store.h"
#include "daemon/state/event_log.h"
#include "daemon/state/lease_journal.h"
#include "kernel/fd_identity.h"
#include "kernel/nic_control.h"
#include "kernel/nic_inventory.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/config.pb.h"
#include "proto/devmem/v1/devmem.pb.h"
#include "proto/devmem/v1/journal.pb.h"

namespace devmem {

// Owns every NIC devmemd manages: profiles (record, apply, restore), the
// devmem queue pool of each NIC, and the leases sessions hold on them:
// bindings (netdev bind-rx/bind-tx) and steering rules (ntuple).
//
// Invariants: a rule always points at a binding of the same session; a
// binding's queues are taken from its NIC's pool; releasing a binding removes
// its rules, its RSS context and then the kernel binding, and returns its
// queues. Nothing half-made stays behind after an error.
//
// Thread-safe: one mutex serializes all NIC changes (the kernel serializes
// them under rtnl anyway). NicControl calls are made with it held; it is never
// held while calling out to sessions or gRPC.
class NicManager {
 public:
  struct Options {
    const devmem::v1::DaemonConfig* config = nullptr;  // outlives this
    NicControl* control = nullptr;                     // outlives this
    NicInventory* inventory = nullptr;                 // outlives this
    // Where every NIC mutation and lease is recorded before it is made.
    // Null: nothing is journaled (unit tests).
    LeaseJournal* journal = nullptr;
    // Extra copies of binding anchors (systemd's fd store). May be null.
    AnchorStore* anchors = nullptr;
    // Who owns a session (token and credentials), journaled with its first
    // lease so the session can be resumed after a restart.
    std::function<std::optional<devmem::v1::JournaledSession>(uint64_t)>
        session_record;
    // The session layer's view of binding anchors handed out behind tickets
    // (SessionManager). `withdraw_anchor_ticket` closes the unredeemed
    // ticket that holds a copy of binding `handle`'s anchor, if any (called
    // on every release, so the kernel unbinds now and not when the ticket
    // expires). `anchor_handed_out` says whether the session's workload
    // received a copy (redeemed it, or returned one after a restart). Either
    // may be empty. Called with mu_ held; they must not call back.
    std::function<void(uint64_t session, uint64_t handle)>
        withdraw_anchor_ticket;
    std::function<bool(uint64_t session, uint64_t handle)> anchor_handed_out;
    // Reservation deadlines; outlives this.
    const Clock* clock = RealClock::Get();
    // The host's secret for reservation tokens (daemon/state/host_key.h).
    // Empty: a fixed test key.
    std::string host_key;
    // Where GPUs and NICs sit on PCIe (GPU targets); null: /sys.
    const PciTopology* topology = nullptr;
    // Where changes are published (reservations, bindings, cordon, NIC
    // profiles); may be null. Outlives this.
    EventLog* events = nullptr;
  };
  explicit NicManager(const Options& options);
  ~NicManager();
  NicManager(const NicManager&) = delete;
  NicManager& operator=(const NicManager&) = delete;

  // Records and applies every configured profile. Never fails as a whole: a
  // NIC that cannot do devmem is NOT_CAPABLE and untouched, one that fails
  // midway is FAILED and rolled back; the others serve. Returns one line per
  // NIC for the log.
  std::vector<std::string> ApplyAll() ABSL_LOCKS_EXCLUDED(mu_);
  // Releases every lease and restores every applied NIC (shutdown).
  std::vector<std::string> RestoreAll() ABSL_LOCKS_EXCLUDED(mu_);

  // Releases the leases on `nic` and restores its recorded original state.
  // NOT_FOUND if no profile names it; FAILED_PRECONDITION if it was never
  // applied, or, with nothing changed, if reservations hold some of its
  // queues or a workload holds a copy of a
  // binding's anchor (the kernel would refuse to turn header split off while
  // the binding lives; the message names the bindings, sessions, uids and
  // pids). An anchor still behind an unredeemed ticket is closed by devmemd
  // itself. If queues stay bound after the leases went (a workload kept an
  // anchor of a binding it had already released), the settings are left as
  // applied and FAILED_PRECONDITION says so: never half-restored.
  absl::StatusOr<devmem::v1::RestoreNicResponse> Restore(absl::string_view nic)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Original, desired and actual state. Empty `nics`: every profile NIC.
  absl::StatusOr<std::vector<devmem::v1::NicState>> States(
      const std::vector<std::string>& nics) ABSL_LOCKS_EXCLUDED(mu_);

  // Where a binding should go: a NIC by name, or the managed NIC nearest to
  // a GPU's PCI address.
  using Target = NicTarget;

  // Binds `dmabuf` (checked to be a dma-buf before any netlink) to
  // `queue_count` free pool queues. The fd is closed once bound (the kernel
  // holds its own reference). Codes: INVALID_ARGUMENT (bad fd or request),
  // NOT_FOUND (no such NIC/GPU), FAILED_PRECONDITION (NIC not devmem-ready,
  // or the kernel refused: its text plus a remedy), RESOURCE_EXHAUSTED (pool
  // or per-session quota, with numbers).
  // With a reservation token, the queues are the reservation's (see
  // Binder::BindRx and Reserver::Redeem for its errors).
  absl::StatusOr<devmem::v1::Binding> BindRx(
      uint64_t session, const Target& target, uint32_t queue_count,
      UniqueFd dmabuf, absl::string_view reservation_token = "")
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<devmem::v1::Binding> BindTx(
      uint64_t session, const Target& target, UniqueFd dmabuf,
      absl::string_view reservation_token = "") ABSL_LOCKS_EXCLUDED(mu_);

  // Reservations (Reserver has the details). `caller` owns what a request
  // names no owner for ("uid:<n>").
  absl::StatusOr<devmem::v1::ReserveResponse> Reserve(
      const devmem::v1::ReserveRequest& req, const std::string& caller)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<devmem::v1::Reservation> Renew(
      const devmem::v1::RenewRequest& req, const std::string& caller)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<devmem::v1::ReleaseReservationResponse> ReleaseReservation(
      const devmem::v1::ReleaseReservationRequest& req,
      const std::string& caller) ABSL_LOCKS_EXCLUDED(mu_);
  devmem::v1::ListReservationsResponse ListReservations(
      const devmem::v1::ListReservationsRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  // Expires reservations past their deadline; the ids that expired now.
  std::vector<std::string> ExpireReservations() ABSL_LOCKS_EXCLUDED(mu_);

  // Run-time profile changes, commit-confirmed (ProfileChanger has the
  // details): ApplyProfile puts a new profile in force on a managed NIC
  // with no bound or reserved queues; unless ConfirmProfile comes in time,
  // ExpireProfileChanges puts the previous one back (one line each), or
  // RevertProfile does at once.
  absl::StatusOr<devmem::v1::ApplyProfileResponse> ApplyProfile(
      const devmem::v1::ApplyProfileRequest& req, const std::string& by)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<devmem::v1::ConfirmProfileResponse> ConfirmProfile(
      const devmem::v1::ConfirmProfileRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<devmem::v1::RevertProfileResponse> RevertProfile(
      const devmem::v1::RevertProfileRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::string> ExpireProfileChanges() ABSL_LOCKS_EXCLUDED(mu_);

  // Cordon: refuse new reservations and unreserved bindings (journaled, so
  // it survives a restart). INVALID_ARGUMENT without a reason (or one over
  // 256 bytes). Uncordon is idempotent.
  absl::StatusOr<devmem::v1::CordonState> Cordon(absl::string_view reason,
                                                 absl::string_view by)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<devmem::v1::CordonState> Uncordon(absl::string_view by)
      ABSL_LOCKS_EXCLUDED(mu_);
  devmem::v1::CordonState cordon_state() const ABSL_LOCKS_EXCLUDED(mu_);
  // What a drain waits for: live reservations and bindings, one line each.
  devmem::v1::DrainProgress DrainStatus() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every binding (cause "drain") and reservation: a drain's deadline
  // when the caller asked for it. Adds the counts to `progress`.
  void ReleaseEverything(devmem::v1::DrainProgress* progress)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The state a watcher starts from, and the event revision it matches.
  devmem::v1::WatchResponse Snapshot() ABSL_LOCKS_EXCLUDED(mu_);

  // Releases one binding of `session`; returns the rules removed. NOT_FOUND
  // for unknown or foreign handles (indistinguishable on purpose).
  absl::StatusOr<uint32_t> ReleaseBinding(uint64_t session, uint64_t handle)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Releases everything `session` holds. Idempotent.
  void ReleaseSession(uint64_t session) ABSL_LOCKS_EXCLUDED(mu_);

  // The NIC of a binding of `session` (for socket creation).
  struct BindingNic {
    std::string nic;
    uint32_t ifindex = 0;
  };
  absl::StatusOr<BindingNic> NicOfBinding(uint64_t session, uint64_t handle)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Installs an ntuple rule steering `tuple` to the binding's queue (or its
  // RSS context). A 5-tuple the NIC refuses falls back to the 3-tuple (dst ip
  // + dst port). The same tuple for the same binding is idempotent (returns
  // the existing rule); for another binding it is ALREADY_EXISTS.
  // Returns once the rule's journal record is durable.
  absl::StatusOr<devmem::v1::FlowRule> SteerFlow(uint64_t session,
                                                 uint64_t handle,
                                                 const FlowTuple& tuple)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The same, returning as soon as the rule is in the NIC: its record is
  // staged (Journal::Stage: written with the records around it in one
  // write) and the caller must AwaitDurable(*durable_at) before it answers
  // anyone (and remove the rule if that fails). A batch steers all its
  // flows with `start_flush` false (a write and a flusher wake-up per rule
  // cost more than they save), then waits once.
  absl::StatusOr<devmem::v1::FlowRule> SteerFlow(
      uint64_t session, uint64_t handle, const FlowTuple& tuple,
      uint64_t* durable_at, bool start_flush = true) ABSL_LOCKS_EXCLUDED(mu_);
  // Many flows at once, under one hold of the manager's lock (a batch of
  // sockets): flows[k] steered to binding handles[k], as the SteerFlow
  // above with `start_flush` false. One result per flow, in order;
  // `*durable_at` becomes the largest sequence number of the rules made.
  struct FlowToSteer {
    uint64_t handle = 0;
    FlowTuple tuple;
  };
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> SteerFlows(
      uint64_t session, absl::Span<const FlowToSteer> flows,
      uint64_t* durable_at) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until journal record `seq` (and every one before it) is on disk;
  // 0 (nothing recorded) returns at once. Does not hold the manager's lock,
  // so other requests go on meanwhile (group commit).
  absl::Status AwaitDurable(uint64_t seq) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes a rule SteerFlow installed (e.g. when the socket it was for
  // could not be made). NOT_FOUND if it is not the session's.
  absl::Status RemoveFlow(uint64_t session, uint64_t handle, uint32_t location)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Live restart and recovery (docs/PROTOCOL.md section 8) ---

  // Reconciles the journal of an earlier run with what the kernel reports
  // (the truth), after ApplyAll(): bindings whose anchor is in `stored` are
  // re-adopted, the others wait for their workload's ReturnAnchor; rules are
  // checked at their locations; intents that never completed are undone;
  // rules steering to the devmem pool that no record claims are removed.
  // Fills `detached` with the sessions to wait for. Returns a report.
  std::vector<std::string> Recover(
      const devmem::v1::JournalState& state,
      absl::flat_hash_map<uint64_t, UniqueFd> stored,
      std::vector<devmem::v1::JournaledSession>* detached)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Bindings of `session` still waiting for their anchor, and those held.
  std::vector<uint64_t> AwaitingAnchor(uint64_t session) const
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<uint64_t> Anchored(uint64_t session) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Re-adopts binding `handle` of `session` with `anchor` (from the
  // workload). Returns its kernel id. INVALID_ARGUMENT if `anchor` is not
  // that binding's; NOT_FOUND if `session` has no such binding or it died.
  // An already-anchored binding answers OK if `anchor` is a copy of devmemd's
  // own (kcmp), INVALID_ARGUMENT otherwise; an awaited one is checked against
  // the anchor's identity in the journal (socket inode and netlink port id).
  absl::StatusOr<uint32_t> ReturnAnchor(uint64_t session, uint64_t handle,
                                        UniqueFd anchor)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A copy of binding `handle`'s anchor, for the workload (SCM_RIGHTS).
  // NOT_FOUND for foreign handles; FAILED_PRECONDITION if the backend has no
  // anchor fd.
  absl::StatusOr<UniqueFd> DupAnchor(uint64_t session, uint64_t handle)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Compares each applied NIC with its profile (link up, channels, header
  // split) and marks its leases degraded, or healthy again. Returns one line
  // per degraded NIC ("dm-a: link is down; 2 binding(s) degraded").
  std::vector<std::string> CheckHealth() ABSL_LOCKS_EXCLUDED(mu_);
  // Why new work is refused ("" if the journal is writable).
  std::string journal_error() const;
  // The journal's durability line and fdatasync count (change_recorder.h).
  std::string journal_durability() const { return recorder_.durability(); }
  uint64_t journal_syncs() const { return recorder_.syncs(); }

  // What the metrics report per NIC (docs/METRICS.md), read in one go.
  struct NicMetrics {
    std::string nic;
    uint32_t ifindex = 0;
    devmem::v1::ProfileState state = devmem::v1::PROFILE_STATE_UNMANAGED;
    std::string reason;  // why the profile is in that state
    bool degraded = false;
    uint32_t queues_free = 0;
    uint32_t queues_used = 0;
    uint32_t queues_reserved = 0;  // held for jobs, not bound yet
    uint32_t bindings_rx = 0;
    uint32_t bindings_tx = 0;
    uint32_t rules = 0;
    uint32_t leases = 0;                    // sessions holding a binding here
    std::vector<uint32_t> bound_rx_queues;  // sorted
    uint64_t rules_installed = 0;
    // By cause; the causes are the constants below.
    std::map<std::string, uint64_t> rules_removed;
    std::map<std::string, uint64_t> rules_failed;
  };
  // Reservations by state and the cordon, for the metrics.
  struct HostFigures {
    uint32_t reservations_active = 0;
    uint32_t reservations_expired = 0;
    bool cordoned = false;
  };
  HostFigures HostMetrics() const ABSL_LOCKS_EXCLUDED(mu_);
  // Why a rule went, and why a steering request was refused (the metrics'
  // cause labels; see rule_cause in nic_profiles.h).
  static constexpr const char* kRemovedReleased = rule_cause::kReleased;
  static constexpr const char* kRemovedSessionClosed =
      rule_cause::kSessionClosed;
  static constexpr const char* kRemovedRestore = rule_cause::kRestore;
  static constexpr const char* kRemovedRecovery = rule_cause::kRecovery;
  static constexpr const char* kRemovedDrain = rule_cause::kDrain;
  static constexpr const char* kFailedInvalid = rule_cause::kInvalid;
  static constexpr const char* kFailedConflict = rule_cause::kConflict;
  static constexpr const char* kFailedQuota = rule_cause::kQuota;
  static constexpr const char* kFailedKernel = rule_cause::kKernel;
  static constexpr const char* kFailedJournal = rule_cause::kJournal;
  std::vector<NicMetrics> Metrics() const ABSL_LOCKS_EXCLUDED(mu_);

  // Counters for status and tests.
  size_t binding_count() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t rule_count() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string backend() const { return options_.control->BackendName(); }

  // One binding and what hangs on it, for admin listings (D-Bus ListLeases).
  // Read from memory in one go; no kernel calls.
  struct LeaseInfo {
    uint64_t session = 0;
    uint64_t handle = 0;
    std::string nic;
    uint32_t kernel_id = 0;
    std::vector<uint32_t> queues;
    bool tx = false;
    uint32_t rules = 0;
    bool anchored = false;  // devmemd holds its anchor (false: awaiting it)
  };
  // Every binding, by handle.
  std::vector<LeaseInfo> Leases() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A bind made with its journal records written: waits until they are
  // durable (without the lock), or releases the binding and fails.
  absl::StatusOr<devmem::v1::Binding> Settled(
      uint64_t session, absl::StatusOr<devmem::v1::Binding> b,
      uint64_t durable_at) ABSL_LOCKS_EXCLUDED(mu_);
  // One rule, as SteerFlow says; a refusal is counted in its NIC's
  // rules_failed by cause.
  absl::StatusOr<devmem::v1::FlowRule> SteerLocked(uint64_t session,
                                                   uint64_t handle,
                                                   const FlowTuple& tuple,
                                                   uint64_t* durable_at,
                                                   bool start_flush)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishProfile(const NicRecord& nic) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // restorer_.State plus the profile in force and any pending change.
  devmem::v1::NicState StateOf(const NicRecord& nic) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<devmem::v1::CordonState> SetCordon(devmem::v1::CordonState st,
                                                    const char* event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  ChangeRecorder recorder_;
  // Lock order: mu_, then (through the session hooks in Options) the
  // SessionManager's lock; nothing calls back into NicManager under it.
  mutable absl::Mutex mu_;
  // The state, each piece owning its own: the NICs with their profiles and
  // pools, and the bindings, rules and their quotas.
  NicProfiles profiles_ ABSL_GUARDED_BY(mu_);
  LeaseTable leases_ ABSL_GUARDED_BY(mu_);
  // The operations on them (no state of their own).
  Binder binder_ ABSL_GUARDED_BY(mu_);
  Steering steering_ ABSL_GUARDED_BY(mu_);
  Restorer restorer_ ABSL_GUARDED_BY(mu_);
  ProfileChanger changer_ ABSL_GUARDED_BY(mu_);
  CordonGate cordon_ ABSL_GUARDED_BY(mu_);
  ReservationTable reservations_ ABSL_GUARDED_BY(mu_);
  Reserver reserver_ ABSL_GUARDED_BY(mu_);
};

}  // namespace devmem
