#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "daemon/nic/lease_table.h"
#include "daemon/state/lease_journal.h"
#include "kernel/nic_info.h"
#include "proto/devmem/v1/journal.pb.h"

namespace devmem {

// Writes the NIC side's changes to the lease journal in the order that makes
// a crash safe: an intent is flushed before its change is made; an outcome or
// a deletion is written after it, unflushed (a process crash keeps it, and a
// machine crash takes the kernel objects too). Errors say what they mean for
// the request. Without a journal (unit tests) nothing is recorded and every
// call succeeds. Thread-compatible; the journal itself is thread-safe.
class ChangeRecorder {
 public:
  explicit ChangeRecorder(LeaseJournal* journal) : journal_(journal) {}

  bool enabled() const { return journal_ != nullptr; }
  // What the journal holds now (empty without one).
  devmem::v1::JournalState state() const;
  // Why new work is refused ("" while the journal is writable).
  std::string error() const;
  // How records are made durable, and fdatasync calls so far ("", 0
  // without a journal).
  std::string durability() const;
  uint64_t syncs() const;

  // Before a change: on error, do not make it.
  absl::Status Intent(const devmem::v1::JournalEntry& entry);
  // After a change that must not go unrecorded: on error, undo it.
  absl::Status Outcome(const devmem::v1::JournalEntry& entry);
  // After a change whose record recovery can do without (it trusts the
  // kernel and the intent): errors are ignored.
  void Note(const devmem::v1::JournalEntry& entry);

  // Group commit, for changes that recovery can always find and undo (a
  // binding dies with devmemd's netlink socket unless its anchor was
  // shared, which happens only with the answer). The intent
  // is written (it survives a devmemd crash) and a flush starts; the change
  // may be made at once, and the caller answers only after AwaitDurable of
  // the returned sequence number (0 without a journal). On error, do not
  // make the change.
  // With `start_flush` false the flush is left to the AwaitDurable that
  // follows (a batch: one flush for all its items, not one per item).
  absl::StatusOr<uint64_t> IntentNoWait(const devmem::v1::JournalEntry& entry,
                                        bool start_flush = true);
  // A change already made that recovery undoes by itself if this record
  // is lost (a rule steering to the devmem pool): the record is staged and
  // goes to the file with the records around it (Journal::Stage). The
  // caller answers only after AwaitDurable of the returned sequence number
  // (0 without a journal); on error it undoes the change. `start_flush`
  // writes the group and starts its flush at once.
  absl::StatusOr<uint64_t> Staged(devmem::v1::JournalEntry entry,
                                  bool start_flush = true);
  // Waits until the record `seq` (and all before it) is on disk. On error
  // the caller undoes the change and fails the request.
  absl::Status AwaitDurable(uint64_t seq);

 private:
  // `s` with what a failed record means for the request.
  static absl::Status Explained(const absl::Status& s, bool durable);
  absl::Status Record(const devmem::v1::JournalEntry& entry, bool durable);

  LeaseJournal* const journal_;
};

// The journal's records of leases, and back.
devmem::v1::JournaledBinding BindingRecord(const BindingLease& b);
devmem::v1::JournaledRule RuleRecord(absl::string_view nic, uint32_t ifindex,
                                     const RuleLease& r);
void TupleToRecord(const FlowTuple& t, devmem::v1::JournaledTuple* out);
FlowTuple TupleFromRecord(const devmem::v1::JournaledTuple& t);
// Whether the kernel's rule `k` is the one `r` records.
bool SameRule(const FlowRule& k, const devmem::v1::JournaledRule& r);

}  // namespace devmem
