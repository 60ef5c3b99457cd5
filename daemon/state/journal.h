#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
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

// Thread-safe: Append and Rewrite serialize on one internal mutex (the only
// lock). One writer per file is the caller's job: nothing stops two Journals
// (or two processes) from opening the same path.
//
// I/O errors carry the errno (StatusErrno) and say path, errno text and what
// to do. ENOSPC/EDQUOT -> RESOURCE_EXHAUSTED, every other errno ->
// UNAVAILABLE.
class Journal {
 public:
  struct Options {
    std::string path;  // e.g. /var/lib/devmemd/journal
    bool sync = true;  // fdatasync after every append (tests may turn off)
  };

  // Creates the parent directory (0700, one level) and the file (0600) if
  // missing. Reads and verifies every record into *scan (may be null); a torn
  // or corrupt tail is cut off (ftruncate + fsync) and described in
  // scan->tail_problem (the caller decides whether to warn). Removes a
  // leftover <path>.tmp of an interrupted Rewrite.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(Options options,
                                                       JournalScan* scan);

  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends one record durably (write + fdatasync when sync) before returning.
  // On failure nothing partial stays in the file: it is cut back to the
  // previous end. If even that fails the journal is broken and every later
  // Append fails FAILED_PRECONDITION until a Rewrite succeeds.
  // INVALID_ARGUMENT if payload is over kMaxJournalRecordBytes.
  absl::Status Append(absl::string_view payload) {
    return Append(payload, true);
  }
  // With `durable` false the record is written (it survives the process, as
  // the page cache does) but not flushed: the next durable append's
  // fdatasync flushes it too. For records whose loss in a machine crash is
  // harmless, because the kernel state they describe does not survive one
  // either (outcomes and deletions; intents must be durable).
  absl::Status Append(absl::string_view payload, bool durable);

  // Replaces the whole journal with `records` (compaction): writes
  // <path>.tmp, fsyncs it, renames it over <path>, fsyncs the directory and
  // appends to the new file from then on. On a failure before the rename the
  // old journal stays intact and usable. If only the directory fsync fails,
  // the new contents are in place (and used) but may not survive a crash; the
  // error says so.
  absl::Status Rewrite(const std::vector<std::string>& records);

  uint64_t size_bytes() const;  // current file size
  uint64_t appends() const;     // records appended since Open
  const std::string& path() const { return path_; }

  // Test seam: the next `n` write(2) calls (Append's and Rewrite's) behave as
  // if they failed with `err` after writing `partial` bytes. Not for
  // production use.
  void InjectWriteFailureForTest(int err, size_t partial = 0, int n = 1);

 private:
  Journal(std::string path, bool sync, UniqueFd fd, uint64_t end);

  // Writes all of `data` at `offset`; returns 0 or the errno.
  int WriteAllLocked(int fd, absl::string_view data, uint64_t offset)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RewriteLocked(const std::vector<std::string>& records)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const bool sync_;

  mutable absl::Mutex mu_;
  UniqueFd fd_ ABSL_GUARDED_BY(mu_);
  uint64_t end_ ABSL_GUARDED_BY(mu_);  // == file size; next append goes here
  uint64_t appends_ ABSL_GUARDED_BY(mu_) = 0;
  // Non-empty once a failed append could not be rolled back: why.
  std::string broken_ ABSL_GUARDED_BY(mu_);

  int inject_err_ ABSL_GUARDED_BY(mu_) = 0;
  size_t inject_partial_ ABSL_GUARDED_BY(mu_) = 0;
  int inject_left_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace devmem
