#pragma once

#include <cstdint>
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

// The entries that rebuild `state` from nothing (compaction).
std::vector<devmem::v1::JournalEntry> SnapshotEntries(
    const devmem::v1::JournalState& state);

// devmemd's lease journal: every NIC mutation and lease, recorded durably
// before it is made (journal.proto), on top of the checksummed record file
// (Journal). Open() replays it; Record() appends and folds; the file is
// compacted to a snapshot when it has grown well past the live state.
//
// Thread-safe.
class LeaseJournal {
 public:
  struct Options {
    std::string path;  // <state_dir>/journal
    bool sync = true;
    // Compact once the file is larger than this and than 4x the snapshot.
    uint64_t compact_bytes = 256 * 1024;
  };
  // Opens or creates the journal and replays it. `report` gets one line per
  // notable event (records replayed, torn tail cut off, unreadable records).
  static absl::StatusOr<std::unique_ptr<LeaseJournal>> Open(
      Options options, std::vector<std::string>* report);

  // Appends `entry` durably, then folds it in. On error nothing is recorded
  // and the caller must not make the change it describes: RESOURCE_EXHAUSTED
  // for a full disk, UNAVAILABLE for other write errors (Journal::Append).
  // The last error is kept for status until an append succeeds again.
  // Intents (what is about to be made) must be `durable` (fdatasync'ed before
  // returning); outcomes and deletions need not be: a process crash keeps
  // them (page cache) and a machine crash loses the kernel objects they
  // describe as well. The next durable record flushes them anyway.
  absl::Status Record(const devmem::v1::JournalEntry& entry,
                      bool durable = true) ABSL_LOCKS_EXCLUDED(mu_);

  devmem::v1::JournalState state() const ABSL_LOCKS_EXCLUDED(mu_);
  // "" while appends succeed; otherwise why new work is refused.
  std::string error() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t size_bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Records that could not be written since Open.
  uint64_t errors() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& path() const { return options_.path; }

  // Test seam: see Journal::InjectWriteFailureForTest.
  void InjectWriteFailureForTest(int err, size_t partial = 0, int n = 1);

 private:
  LeaseJournal(Options options, std::unique_ptr<Journal> journal,
               devmem::v1::JournalState state);
  void MaybeCompactLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::unique_ptr<Journal> journal_ ABSL_GUARDED_BY(mu_);
  devmem::v1::JournalState state_ ABSL_GUARDED_BY(mu_);
  std::string error_ ABSL_GUARDED_BY(mu_);
  uint64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace devmem
