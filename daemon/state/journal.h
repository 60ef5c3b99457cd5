#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "kernel/unique_fd.h"

namespace devmem {

// Crash-safe append-only journal.
//
// On-disk format: records back to back, no file header, each
//
//   0        4          8          12
//   +--------+----------+----------+---------------------+
//   | "DMJ1" | length   | crc32c   | payload             |
//   |        | u32 LE   | u32 LE   | `length` bytes      |
//   +--------+----------+----------+---------------------+
//
// where crc32c = Crc32c(the 4 length bytes || payload). A length over
// kMaxJournalRecordBytes is corruption. A crash mid-append leaves at most one
// torn record at the end; Journal::Open cuts it (and anything after the first
// bad record) off.
inline constexpr size_t kMaxJournalRecordBytes = 1 << 20;
inline constexpr size_t kJournalHeaderBytes = 12;

struct JournalScan {
  std::vector<std::string> records;  // every valid record, in order
  uint64_t valid_bytes = 0;          // prefix that holds them
  uint64_t dropped_bytes = 0;        // torn/corrupt tail after it
  // "" if clean; else "record <i> at offset <o>: <why>", i counted from 0,
  // why one of "bad magic", "truncated header (needs 12 bytes, 5 present)",
  // "length 9999999 over limit", "truncated payload (needs 120 bytes, 33
  // present)", "checksum mismatch".
  std::string tail_problem;
};

// Pure parser (no I/O; also the fuzzing entry point): stops at the first bad
// record.
JournalScan ScanJournal(absl::string_view bytes);

// One record with its header, exactly as Append writes it.
std::string EncodeJournalRecord(absl::string_view payload);

// Thread-safe: one internal mutex (the only lock) orders writes, Rewrite and
// the flush bookkeeping; fdatasync itself runs without it, so writers go on
// while a flush is in flight. One writer per file is the caller's job:
// nothing stops two Journals (or two processes) from opening the same path.
//
// Group commit: Open starts one flusher thread when `sync` is set. Flush()
// and WaitDurable() raise the wanted sequence number and wake it; each
// fdatasync covers every record written before it started, so records
// written during a flush, and any number of waiters, share the next one.
//
// I/O errors carry the errno (StatusErrno) and say path, errno text and what
// to do. ENOSPC/EDQUOT -> RESOURCE_EXHAUSTED, every other errno ->
// UNAVAILABLE. A failed fdatasync is always UNAVAILABLE and breaks the
// journal (the kernel may have dropped the dirty pages, so a later fdatasync
// proves nothing) until a Rewrite succeeds.
class Journal {
 public:
  struct Options {
    std::string path;  // e.g. /var/lib/devmemd/journal
    bool sync = true;  // fdatasync durable records (tests may turn off)
    // Called instead of ::fdatasync(fd) when set; same contract (0, or -1
    // with errno). Lets tests hold a flush open or make it fail.
    std::function<int(int fd)> fdatasync = nullptr;
  };

  // Creates the parent directory (0700, one level) and the file (0600) if
  // missing. Reads and verifies every record into *scan (may be null); a torn
  // or corrupt tail is cut off (ftruncate + fsync) and described in
  // scan->tail_problem (the caller decides whether to warn). Removes a
  // leftover <path>.tmp of an interrupted Rewrite. Finds out whether the file
  // system keeps data across a reboot (volatile_medium()).
  static absl::StatusOr<std::unique_ptr<Journal>> Open(Options options,
                                                       JournalScan* scan);

  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  // Finishes a flush already asked for, then stops the flusher. No call may
  // be in progress.
  ~Journal();

  // Appends one record (no flush) and returns its sequence number: 1 for the
  // first record written since Open, never reused (also across Rewrite). On
  // failure nothing partial stays in the file: it is cut back to the
  // previous end. If even that fails the journal is broken and every later
  // write fails FAILED_PRECONDITION until a Rewrite succeeds.
  // INVALID_ARGUMENT if payload is over kMaxJournalRecordBytes.
  absl::StatusOr<uint64_t> Write(absl::string_view payload);

  // Group write: takes a record like Write and returns its sequence number,
  // but keeps it in memory with the records staged before it; they go to
  // the file in one write(2) when their bytes reach kMaxStagedBytes, and
  // before any Write, Flush or WaitDurable that needs them. Only for records
  // whose loss in a process crash is harmless (the change they describe is
  // provably undone at recovery without them). An error means this record
  // is not in the journal; a failed group write fails WaitDurable of every
  // record in it.
  absl::StatusOr<uint64_t> Stage(absl::string_view payload);
  static constexpr size_t kMaxStagedBytes = 64 * 1024;

  // Starts a flush of every record written so far and returns at once.
  // Cheap when nothing is pending; a no-op without `sync`.
  void Flush();

  // Returns once every record up to `seq` is on disk (at once without
  // `sync`), starting a flush if none covers it yet. UNAVAILABLE if the
  // fdatasync that had to cover it failed; then the journal is broken.
  // The error of its group write for a staged record that never reached
  // the file. INVALID_ARGUMENT for a seq never returned by Write or Stage.
  absl::Status WaitDurable(uint64_t seq);

  // Write, then WaitDurable when `durable`. A failed write leaves nothing;
  // a failed flush leaves the record in the file (it may or may not survive
  // a crash) and the journal broken.
  absl::Status Append(absl::string_view payload) {
    return Append(payload, true);
  }
  // With `durable` false the record is written (it survives the process, as
  // the page cache does) but not flushed: the next flush covers it too. For
  // records whose loss in a machine crash is harmless, because the kernel
  // state they describe does not survive one either (outcomes and deletions;
  // intents must be durable).
  absl::Status Append(absl::string_view payload, bool durable);

  // Replaces the whole journal with `records` (compaction): writes
  // <path>.tmp, fsyncs it, waits for a flush in flight, renames it over
  // <path>, fsyncs the directory and appends to the new file from then on;
  // every record written so far then counts as durable (the caller's
  // `records` supersede them). On a failure before the rename the old
  // journal stays intact and usable. If only the directory fsync fails, the
  // new contents are in place (and used) but may not survive a crash; the
  // error says so.
  absl::Status Rewrite(const std::vector<std::string>& records);

  uint64_t size_bytes() const;  // current file size
  uint64_t appends() const;     // records written since Open (= last seq)
  uint64_t syncs() const;       // fdatasync calls since Open
  const std::string& path() const { return path_; }

  // True on tmpfs or ramfs: records survive a devmemd crash, not a reboot.
  bool volatile_medium() const { return volatile_; }
  // One line for logs and status, e.g. "fdatasync, group commit (ext4,
  // 0xef53)" or "volatile: <path> is on tmpfs; ...".
  const std::string& durability() const { return durability_; }

  // Test seam: the next `n` write(2) calls (Write's and Rewrite's) behave as
  // if they failed with `err` after writing `partial` bytes. Not for
  // production use.
  void InjectWriteFailureForTest(int err, size_t partial = 0, int n = 1);

 private:
  struct Medium {
    bool is_volatile = false;
    std::string durability;
  };
  Journal(Options options, UniqueFd fd, uint64_t end, Medium medium);

  // Writes all of `data` at `offset`; returns 0 or the errno.
  int WriteAllLocked(int fd, absl::string_view data, uint64_t offset)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits out a Rewrite's swap; FAILED_PRECONDITION once the journal is
  // broken, saying why and what to do.
  absl::Status WritableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the staged records (one write(2)). On failure they are dropped
  // and their seqs remembered as failed; returns the error.
  absl::Status WriteStagedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The error of the failed group write that held `seq`, or OK.
  absl::Status StagedFailureLocked(uint64_t seq) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cuts the file back to end_ after a failed write; breaks the journal if
  // that fails.
  void RollBackLocked(const absl::Status& cause)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes and fsyncs <path>.tmp; sets *fd and *end.
  absl::Status WriteTmpLocked(const std::vector<std::string>& records,
                              UniqueFd* fd, uint64_t* end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SwapInLocked(UniqueFd fd, uint64_t end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // fdatasync through the seam; returns 0 or the errno.
  int SyncData(int fd) const;
  void FlusherLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Fails every waiter not yet durable and breaks the journal.
  void FlushFailedLocked(int err, absl::string_view op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Raises wanted_ to `seq` and wakes the flusher if that is new work.
  void WantLocked(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FlusherHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const bool sync_;
  const std::function<int(int fd)> fdatasync_;
  const bool volatile_;
  const std::string durability_;

  mutable absl::Mutex mu_;
  UniqueFd fd_ ABSL_GUARDED_BY(mu_);
  uint64_t end_ ABSL_GUARDED_BY(mu_);  // == file size; next append goes here
  // Non-empty once a failed write could not be rolled back or a flush
  // failed: why.
  std::string broken_ ABSL_GUARDED_BY(mu_);

  // Sequence numbers: written_ >= on_file_ >= durable_, written_ >= wanted_;
  // a record is on disk once its seq <= durable_. Seqs in (on_file_,
  // written_] are staged: in staged_, not yet in the file.
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t on_file_ ABSL_GUARDED_BY(mu_) = 0;
  std::string staged_ ABSL_GUARDED_BY(mu_);
  // Group writes that failed: seqs [first, last] and why (the newest few;
  // their waiters ask right after staging).
  struct FailedGroup {
    uint64_t first;
    uint64_t last;
    absl::Status status;
  };
  std::vector<FailedGroup> failed_groups_ ABSL_GUARDED_BY(mu_);
  static constexpr size_t kFailedGroupsKept = 64;
  uint64_t wanted_ ABSL_GUARDED_BY(mu_) = 0;   // highest seq asked to flush
  uint64_t durable_ ABSL_GUARDED_BY(mu_) = 0;  // highest seq on disk
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  // Between a Rewrite's .tmp and its rename: no new writes or flushes.
  bool rewriting_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The failed flush's error, for every waiter not yet durable; cleared by a
  // successful Rewrite.
  absl::Status flush_error_ ABSL_GUARDED_BY(mu_);
  uint64_t syncs_ ABSL_GUARDED_BY(mu_) = 0;

  // Condition variables rather than absl::Condition: waiters re-check their
  // predicate themselves, which the TSan build's annotations can follow.
  absl::CondVar work_cv_;  // to the flusher: wanted_, rewriting_, stopping_
  absl::CondVar done_cv_;  // to waiters: durable_, flush_error_, flushing_,
                           // rewriting_

  int inject_err_ ABSL_GUARDED_BY(mu_) = 0;
  size_t inject_partial_ ABSL_GUARDED_BY(mu_) = 0;
  int inject_left_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread flusher_;  // set by Open when sync_, joined by ~Journal
};

}  // namespace devmem
