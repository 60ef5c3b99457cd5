#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernel/fd_identity.h"
#include "kernel/nic_control.h"
#include "kernel/nic_info.h"

namespace devmem {

// One binding a session holds: its queues on a NIC and the kernel binding
// (null after a restart until the anchor comes back).
struct BindingLease {
  uint64_t handle = 0;
  uint64_t session = 0;
  std::string nic;
  uint32_t ifindex = 0;
  uint32_t kernel_id = 0;
  std::vector<uint32_t> queues;
  bool tx = false;
  // Null after a restart until the anchor comes back (ReturnAnchor or the
  // fd store); the kernel binding lives on through the workload's copy.
  std::unique_ptr<DevmemBinding> kernel;
  std::optional<uint32_t> rss_context;
  // The anchor's identity, journaled; all zero if unknown.
  FdIdentity anchor_id;
  // Came back from the journal of an earlier run: its workload holds a copy
  // of the anchor (that is how the binding outlived devmemd).
  bool recovered = false;
  absl::flat_hash_set<uint32_t> rule_locations;
  uint64_t rules_made = 0;  // for spreading flows over the queues
  // The reservation whose queues it took ("" if it took free ones).
  std::string reservation;
};

// One steering rule devmemd installed for a binding.
struct RuleLease {
  FlowTuple requested;  // what the socket asked for (the idempotency key)
  FlowRule installed;   // what the NIC took (maybe the 3-tuple fallback)
  uint64_t session = 0;
  uint64_t binding = 0;
  uint64_t journal_id = 0;
  // The journal sequence number of its intent: an answer about this rule
  // waits until it is durable (ChangeRecorder::AwaitDurable).
  uint64_t durable_at = 0;
};

// Who holds what on the NICs: bindings by handle, steering rules by NIC and
// location with the tuple index that makes steering idempotent, per-session
// totals, and the quotas over them (per session and per uid; the per-NIC
// rule quota belongs to the NIC's profile). It makes no kernel or journal
// calls: NicManager orders those around it. Thread-compatible: NicManager's
// lock guards it.
class LeaseTable {
 public:
  struct Quotas {
    uint32_t bindings_per_session = 8;
    uint32_t bindings_per_uid = 64;
    uint32_t rules_per_session = 64;
    uint32_t rules_per_uid = 1024;
  };
  explicit LeaseTable(const Quotas& quotas) : quotas_(quotas) {}

  // Binding handles and rule journal ids come from one sequence, so that a
  // journal record's id never names two objects.
  uint64_t NextId() { return next_id_++; }
  // After a restart: ids below `next` are taken.
  void SkipIdsBelow(uint64_t next);

  // --- Sessions ---
  // Counts the session's leases against `uid` from now on.
  void SetOwner(uint64_t session, uint32_t uid);
  // Whether the session's owner is in the journal (recorded with its first
  // lease), and marking it so.
  bool Journaled(uint64_t session) const;
  void MarkJournaled(uint64_t session);
  // True if the session holds bindings or rules.
  bool Holds(uint64_t session) const;
  // True once the session has an entry (an owner, a lease), until
  // ForgetSession(); its owner's uid then (nullopt before).
  bool Known(uint64_t session) const { return sessions_.contains(session); }
  std::optional<uint32_t> OwnerOf(uint64_t session) const;
  // Forgets the session's totals; its bindings must be gone. Returns whether
  // it was journaled (its record then needs deleting).
  bool ForgetSession(uint64_t session);
  std::vector<uint64_t> BindingsOf(uint64_t session) const;  // oldest first

  // --- Bindings ---
  // NOT_FOUND (the same text for unknown and foreign handles).
  absl::StatusOr<BindingLease*> Find(uint64_t session, uint64_t handle);
  BindingLease* Get(uint64_t handle);
  const BindingLease* Get(uint64_t handle) const;
  BindingLease& Add(BindingLease b);
  // Takes the binding out (its rules must be removed first).
  BindingLease Remove(uint64_t handle);
  std::vector<uint64_t> HandlesOn(absl::string_view nic) const;  // sorted
  const absl::flat_hash_map<uint64_t, BindingLease>& bindings() const {
    return bindings_;
  }
  void Clear() { bindings_.clear(); }

  // --- Rules (per NIC, by location) ---
  const RuleLease* RuleFor(absl::string_view nic,
                           const FlowTuple& requested) const;
  const RuleLease* RuleAt(absl::string_view nic, uint32_t location) const;
  // Records a rule installed at `location` for its binding (which must be
  // here): the binding's locations, the session's count, the tuple index.
  void AddRule(absl::string_view nic, uint32_t location, RuleLease r);
  // The reverse; nullopt if no rule is at `location`.
  std::optional<RuleLease> RemoveRule(absl::string_view nic, uint32_t location);
  size_t RuleCount(absl::string_view nic) const;
  size_t RuleCount() const;

  // --- Quotas: RESOURCE_EXHAUSTED with the numbers and what to do ---
  // One more binding for `session`, whose owner is `uid`.
  absl::Status CheckBindQuota(uint64_t session, uint32_t uid) const;
  // One more rule for `session`.
  absl::Status CheckRuleQuota(uint64_t session) const;

 private:
  struct SessionTotals {
    std::vector<uint64_t> bindings;
    uint32_t rules = 0;
    uint32_t uid = 0;
    bool journaled = false;
  };
  struct NicRules {
    std::map<uint32_t, RuleLease> by_location;
    absl::flat_hash_map<std::string, uint32_t> by_tuple;
  };
  // What all of a uid's sessions hold, kept up to date by every change to a
  // session's totals, so that a quota check does not walk every session.
  struct UidTotals {
    uint32_t bindings = 0;
    uint32_t rules = 0;
  };
  UidTotals TotalsOf(uint32_t uid) const;
  // Adds (or takes away) what one session holds to its uid's totals.
  void CountForUid(uint32_t uid, int64_t bindings, int64_t rules);

  const Quotas quotas_;
  uint64_t next_id_ = 1;
  absl::flat_hash_map<uint64_t, BindingLease> bindings_;
  absl::flat_hash_map<uint64_t, SessionTotals> sessions_;
  absl::flat_hash_map<uint32_t, UidTotals> uids_;
  absl::flat_hash_map<std::string, NicRules> rules_;
};

// The tuple index's key, and the tuple in words for messages.
std::string TupleKey(const FlowTuple& t);
std::string DescribeTuple(const FlowTuple& t);

}  // namespace devmem
