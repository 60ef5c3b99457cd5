#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "daemon/state/journal.h"
#include "proto/devmem/v1/journal.pb.h"

namespace devmem {

// Folds one entry into `state` (puts replace, deletes remove; next_id only
// grows). Entries that name nothing are ignored, so replay never fails.
void FoldJournalEntry(const devmem::v1::JournalEntry& entry,
                      devmem::v1::JournalState* state);
// The same, taking over what `entry` holds where that saves a copy.
void FoldJournalEntry(devmem::v1::JournalEntry&& entry,
                      devmem::v1::JournalState* state);

// The entries that rebuild `state` from nothing (compaction).
std::vector<devmem::v1::JournalEntry> SnapshotEntries(
    const devmem::v1::JournalState& state);

// devmemd's lease journal: every NIC mutation and lease, recorded durably
// before it is made (journal.proto), on top of the checksummed record file
// (Journal). Open() replays it; Write()/Record() append and fold; the file is
// compacted to a snapshot when it has grown well past the live state.
//
// Thread-safe. Lock order: mu_, then the Journal's own lock. mu_ keeps the
// file's record order and state_'s fold order the same; waiting for
// durability happens outside it, so writers share one flush (group commit).
class LeaseJournal {
 public:
  struct Options {
    std::string path;  // <state_dir>/journal
    bool sync = true;
    // Compact once the file is larger than this and than 4x the snapshot.
    uint64_t compact_bytes = 256 * 1024;
    // See Journal::Options::fdatasync (tests hold or fail a flush).
    std::function<int(int fd)> fdatasync = nullptr;
  };
  // Opens or creates the journal and replays it. `report` gets one line per
  // notable event (records replayed, torn tail cut off, unreadable records).
  static absl::StatusOr<std::unique_ptr<LeaseJournal>> Open(
      Options options, std::vector<std::string>* report);

  // Appends `entry` (not flushed yet) and folds it in; returns its sequence
  // number for WaitDurable. On error nothing is recorded and the caller must
  // not make the change it describes: RESOURCE_EXHAUSTED for a full disk,
  // UNAVAILABLE for other write errors, FAILED_PRECONDITION once the journal
  // is broken. The last error is kept for status (error()).
  absl::StatusOr<uint64_t> Write(const devmem::v1::JournalEntry& entry)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Write through Journal::Stage: the record reaches the file with the
  // records staged around it, in one write(2). Folded in at once. Only for
  // changes recovery undoes without their record (rules steering to the
  // devmem pool: an unclaimed one is an orphan). If its group write fails,
  // WaitDurable says so and the entry stays folded in until the caller's
  // undo records its removal.
  absl::StatusOr<uint64_t> Stage(devmem::v1::JournalEntry entry)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Starts flushing every record written so far; does not wait.
  void Flush();
  // Returns once record `seq` and all before it are on disk; never holds mu_
  // while waiting, so Write goes on meanwhile. A failure (UNAVAILABLE: the
  // flush failed, the journal is broken) is kept in error() like a failed
  // write; the entry stays folded in, as it is in the file.
  absl::Status WaitDurable(uint64_t seq) ABSL_LOCKS_EXCLUDED(mu_);

  // Write, then WaitDurable when `durable`. The last error is kept for
  // status until a durable record succeeds again. Intents (what is about to
  // be made) must be `durable`; outcomes and deletions need not be: a
  // process crash keeps them (page cache) and a machine crash loses the
  // kernel objects they describe as well. The next flush covers them anyway.
  absl::Status Record(const devmem::v1::JournalEntry& entry,
                      bool durable = true) ABSL_LOCKS_EXCLUDED(mu_);

  devmem::v1::JournalState state() const ABSL_LOCKS_EXCLUDED(mu_);
  // "" while appends succeed; otherwise why new work is refused.
  std::string error() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t size_bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Records that could not be written or made durable since Open.
  uint64_t errors() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& path() const { return options_.path; }
  // See Journal: fdatasync calls since Open, tmpfs/ramfs, one status line.
  uint64_t syncs() const { return journal_->syncs(); }
  bool volatile_medium() const { return journal_->volatile_medium(); }
  std::string durability() const { return journal_->durability(); }

  // Test seam: see Journal::InjectWriteFailureForTest.
  void InjectWriteFailureForTest(int err, size_t partial = 0, int n = 1);

 private:
  LeaseJournal(Options options, std::unique_ptr<Journal> journal,
               devmem::v1::JournalState state);
  // `movable` (may be null) is `entry` itself when the fold may take its
  // contents over.
  absl::StatusOr<uint64_t> Append(const devmem::v1::JournalEntry& entry,
                                  bool staged,
                                  devmem::v1::JournalEntry* movable)
      ABSL_LOCKS_EXCLUDED(mu_);
  void NoteErrorLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeCompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  // Fixed after construction and thread-safe itself; mu_ orders the writes
  // and the Rewrite of a compaction, not access to the pointer.
  const std::unique_ptr<Journal> journal_;
  mutable absl::Mutex mu_;
  devmem::v1::JournalState state_ ABSL_GUARDED_BY(mu_);
  std::string error_ ABSL_GUARDED_BY(mu_);
  // The last seq written when error_ was set: only a durable record written
  // after it proves the journal healthy again.
  uint64_t error_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  // The file size at which compaction is considered next: sizing the live
  // state costs O(state), so it is looked at once per 25% of growth, not on
  // every record (8,192 rules made that the daemon's main cost).
  uint64_t next_check_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace devmem
