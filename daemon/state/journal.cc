#include "daemon/state/journal.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "daemon/state/crc32c.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

constexpr char kMagic[] = "DMJ1";
constexpr size_t kMagicBytes = 4;

void PutLe32(uint32_t v, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint32_t GetLe32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// What the operator should do about `err` on the state directory.
absl::string_view HintFor(int err) {
  switch (err) {
    case ENOSPC:
      return "free space on the file system of the state directory, new work "
             "is refused until then";
    case EDQUOT:
      return "raise the quota or free space on the file system of the state "
             "directory, new work is refused until then";
    case EROFS:
      return "the state directory's file system is read-only; remount it "
             "read-write, new work is refused until then";
    case EACCES:
    case EPERM:
      return "check the owner and mode of the state directory and journal";
    case ENOTDIR:
    case ENOENT:
      return "check that the state directory's parent exists and is a "
             "directory";
    default:
      return "check the state directory's file system and the kernel log";
  }
}

// `message` with `code`, keeping `from`'s payloads (the errno for
// StatusErrno()).
absl::Status WithPayloadsOf(const absl::Status& from, absl::StatusCode code,
                            absl::string_view message) {
  absl::Status out(code, message);
  from.ForEachPayload([&out](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

// "journal <path>: <strerror> (errno N, in <op>); <hint>". ENOSPC/EDQUOT ->
// RESOURCE_EXHAUSTED (the caller refuses new work), anything else ->
// UNAVAILABLE. Keeps ErrnoStatus's payload so StatusErrno() works.
absl::Status JournalError(int err, absl::string_view path,
                          absl::string_view op) {
  const absl::StatusCode code = (err == ENOSPC || err == EDQUOT)
                                    ? absl::StatusCode::kResourceExhausted
                                    : absl::StatusCode::kUnavailable;
  return WithPayloadsOf(
      ErrnoStatus(err, path), code,
      absl::StrCat("journal ", path, ": ", std::strerror(err), " (errno ", err,
                   ", in ", op, "); ", HintFor(err)));
}

// A failed fdatasync is UNAVAILABLE even for ENOSPC: freeing space does not
// bring back pages the kernel may have dropped (the "fsyncgate" semantics of
// Linux's writeback error reporting, mm/filemap.c
// file_check_and_advance_wb_err).
absl::Status FlushError(int err, absl::string_view path, absl::string_view op) {
  const absl::Status status = JournalError(err, path, op);
  return WithPayloadsOf(
      status, absl::StatusCode::kUnavailable,
      absl::StrCat(status.message(),
                   "; records written since the last successful flush may "
                   "not be on disk"));
}

int ReadAll(int fd, uint64_t size, std::string* out) {
  out->resize(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t n =
        ::pread(fd, out->data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;  // Shrunk under us; scan what is there.
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  return 0;
}

int FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  if (::fsync(fd.get_unowned()) != 0) return errno;
  return 0;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Creates the state directory (one level) and the file if missing, making
// new directory entries durable; the file must be a regular one.
absl::StatusOr<UniqueFd> OpenOrCreate(const std::string& path) {
  const std::string dir = DirName(path);
  if (::mkdir(dir.c_str(), 0700) == 0) {
    // Make the new directory entry itself durable.
    if (const int err = FsyncDir(DirName(dir)); err != 0) {
      return JournalError(err, path, "fsync of the new directory's parent");
    }
  } else if (errno != EEXIST) {
    return JournalError(errno, path, "create state directory");
  }
  bool created = true;
  UniqueFd fd(
      ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid() && errno == EEXIST) {
    created = false;
    fd.Reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  }
  if (!fd.valid()) return JournalError(errno, path, "open");
  if (created) {
    if (const int err = FsyncDir(dir); err != 0) {
      return JournalError(err, path, "fsync of the state directory");
    }
  }
  return fd;
}

// Reads the whole file into a scan and cuts a torn or corrupt tail off.
absl::Status ReadAndRepair(int fd, const std::string& path,
                           JournalScan* result) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return JournalError(errno, path, "fstat");
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("journal ", path, " is not a regular file; remove it"));
  }
  std::string bytes;
  if (const int err = ReadAll(fd, static_cast<uint64_t>(st.st_size), &bytes);
      err != 0) {
    return JournalError(err, path, "read");
  }
  *result = ScanJournal(bytes);
  if (result->dropped_bytes > 0) {
    if (::ftruncate(fd, static_cast<off_t>(result->valid_bytes)) != 0 ||
        ::fsync(fd) != 0) {
      return JournalError(errno, path,
                          absl::StrCat("cutting off the bad tail (",
                                       result->tail_problem, ")"));
    }
  }
  return absl::OkStatus();
}

absl::string_view FileSystemName(uint32_t magic) {
  switch (magic) {
    case EXT4_SUPER_MAGIC:  // also ext2 and ext3
      return "ext4";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    case F2FS_SUPER_MAGIC:
      return "f2fs";
    case OVERLAYFS_SUPER_MAGIC:
      return "overlayfs";
    case NFS_SUPER_MAGIC:
      return "nfs";
    case TMPFS_MAGIC:
      return "tmpfs";
    case RAMFS_MAGIC:
      return "ramfs";
    default:
      return "";
  }
}

// Whether the file system under `fd` loses its data on reboot, and the line
// that says how records are made durable there.
absl::Status ProbeMedium(int fd, const std::string& path, bool sync,
                         bool* is_volatile, std::string* durability) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return JournalError(errno, path, "fstatfs");
  const auto magic = static_cast<uint32_t>(fs.f_type);
  const absl::string_view name = FileSystemName(magic);
  *is_volatile = magic == TMPFS_MAGIC || magic == RAMFS_MAGIC;
  if (*is_volatile) {
    *durability = absl::StrCat("volatile: ", path, " is on ", name,
                               "; records survive a devmemd crash but not a "
                               "reboot");
    return absl::OkStatus();
  }
  const std::string where =
      absl::StrCat(name.empty() ? "file system " : absl::StrCat(name, ", "),
                   "0x", absl::Hex(magic));
  *durability = sync ? absl::StrCat("fdatasync, group commit (", where, ")")
                     : absl::StrCat(
                           "no fdatasync (sync off): records survive a devmemd "
                           "crash but not a machine crash (",
                           where, ")");
  return absl::OkStatus();
}

}  // namespace

std::string EncodeJournalRecord(absl::string_view payload) {
  std::string out(kJournalHeaderBytes + payload.size(), '\0');
  out.replace(0, kMagicBytes, kMagic, kMagicBytes);
  PutLe32(static_cast<uint32_t>(payload.size()), &out[4]);
  out.replace(kJournalHeaderBytes, payload.size(), payload.data(),
              payload.size());
  const uint32_t crc =
      Crc32c(payload, Crc32c(absl::string_view(out.data() + 4, 4)));
  PutLe32(crc, &out[8]);
  return out;
}

JournalScan ScanJournal(absl::string_view bytes) {
  JournalScan scan;
  size_t off = 0;
  auto fail = [&](absl::string_view why) {
    scan.tail_problem = absl::StrCat("record ", scan.records.size(),
                                     " at offset ", off, ": ", why);
  };
  while (off < bytes.size()) {
    const absl::string_view rest = bytes.substr(off);
    const size_t magic_present = std::min(rest.size(), kMagicBytes);
    if (rest.substr(0, magic_present) !=
        absl::string_view(kMagic, magic_present)) {
      fail("bad magic");
      break;
    }
    if (rest.size() < kJournalHeaderBytes) {
      fail(absl::StrCat("truncated header (needs ", kJournalHeaderBytes,
                        " bytes, ", rest.size(), " present)"));
      break;
    }
    const uint32_t length = GetLe32(rest.data() + 4);
    if (length > kMaxJournalRecordBytes) {
      fail(absl::StrCat("length ", length, " over limit"));
      break;
    }
    const size_t present = rest.size() - kJournalHeaderBytes;
    if (present < length) {
      fail(absl::StrCat("truncated payload (needs ", length, " bytes, ",
                        present, " present)"));
      break;
    }
    const absl::string_view payload = rest.substr(kJournalHeaderBytes, length);
    if (Crc32c(payload, Crc32c(rest.substr(4, 4))) !=
        GetLe32(rest.data() + 8)) {
      fail("checksum mismatch");
      break;
    }
    scan.records.emplace_back(payload);
    off += kJournalHeaderBytes + length;
  }
  scan.valid_bytes = off;
  scan.dropped_bytes = bytes.size() - off;
  return scan;
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(Options options,
                                                       JournalScan* scan) {
  const std::string& path = options.path;
  if (path.empty() || path.back() == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("journal path \"", path, "\" must name a file"));
  }
  absl::StatusOr<UniqueFd> fd = OpenOrCreate(path);
  if (!fd.ok()) return fd.status();
  JournalScan local;
  JournalScan& result = scan != nullptr ? *scan : local;
  if (absl::Status s = ReadAndRepair(fd->get_unowned(), path, &result);
      !s.ok()) {
    return s;
  }
  // A leftover of a Rewrite that crashed before its rename; never live data.
  const std::string tmp = absl::StrCat(path, ".tmp");
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return JournalError(errno, tmp, "remove stale temporary file");
  }
  Medium medium;
  if (absl::Status s = ProbeMedium(fd->get_unowned(), path, options.sync,
                                   &medium.is_volatile, &medium.durability);
      !s.ok()) {
    return s;
  }
  const bool sync = options.sync;
  auto journal =
      absl::WrapUnique(new Journal(std::move(options), *std::move(fd),
                                   result.valid_bytes, std::move(medium)));
  if (sync) {
    journal->flusher_ = std::thread([j = journal.get()] { j->FlusherLoop(); });
  }
  return journal;
}

Journal::Journal(Options options, UniqueFd fd, uint64_t end, Medium medium)
    : path_(std::move(options.path)),
      sync_(options.sync),
      fdatasync_(std::move(options.fdatasync)),
      volatile_(medium.is_volatile),
      durability_(std::move(medium.durability)),
      fd_(std::move(fd)),
      end_(end) {}

Journal::~Journal() {
  {
    absl::MutexLock lock(&mu_);
    // Staged records go to the file (best effort: a record lost here is one
    // that recovery can do without). No Rewrite can be in progress.
    if (WritableLocked().ok()) (void)WriteStagedLocked();
    stopping_ = true;
    work_cv_.Signal();
  }
  if (flusher_.joinable()) flusher_.join();
}

int Journal::SyncData(int fd) const {
  errno = 0;
  const int rc = fdatasync_ ? fdatasync_(fd) : ::fdatasync(fd);
  if (rc == 0) return 0;
  return errno != 0 ? errno : EIO;  // A seam that forgot errno still fails.
}

bool Journal::FlusherHasWork() const {
  return !flushing_ && !rewriting_ && flush_error_.ok() && wanted_ > durable_;
}

void Journal::WantLocked(uint64_t seq) {
  if (seq <= wanted_) return;
  wanted_ = seq;
  if (seq > durable_) work_cv_.Signal();
}

// One fdatasync at a time, taking in every record written before it starts;
// a Rewrite waiting to swap the fd goes first.
void Journal::FlusherLoop() {
  mu_.Lock();
  for (;;) {
    while (!stopping_ && !FlusherHasWork()) work_cv_.Wait(&mu_);
    if (!FlusherHasWork()) break;  // stopping, every wanted flush done
    flushing_ = true;
    ++syncs_;
    const uint64_t target = on_file_;
    const int fd = fd_.get_unowned();  // Rewrite keeps it open meanwhile
    mu_.Unlock();
    const int err = SyncData(fd);
    mu_.Lock();
    flushing_ = false;
    if (err != 0) {
      FlushFailedLocked(err, "fdatasync");
    } else if (flush_error_.ok()) {
      // Linux reports a writeback error once per open file (mm/filemap.c
      // file_check_and_advance_wb_err): if a rollback's fdatasync got it
      // meanwhile, this success proves nothing.
      durable_ = std::max(durable_, target);
    }
    done_cv_.SignalAll();
  }
  mu_.Unlock();
}

void Journal::FlushFailedLocked(int err, absl::string_view op) {
  flush_error_ = FlushError(err, path_, op);
  broken_ = absl::StrCat("a flush failed (", flush_error_.message(), ")");
  done_cv_.SignalAll();
}

int Journal::WriteAllLocked(int fd, absl::string_view data, uint64_t offset) {
  if (inject_left_ > 0) {
    --inject_left_;
    const size_t partial = std::min(inject_partial_, data.size());
    if (partial > 0) {
      (void)::pwrite(fd, data.data(), partial, static_cast<off_t>(offset));
    }
    return inject_err_;
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                               static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;  // No progress and no errno: do not spin.
    done += static_cast<size_t>(n);
  }
  return 0;
}

namespace {

absl::Status RecordSizeError(const std::string& path, size_t size) {
  return absl::InvalidArgumentError(
      absl::StrCat("journal ", path, ": record of ", size,
                   " bytes is over the limit of ", kMaxJournalRecordBytes));
}

}  // namespace

absl::Status Journal::WritableLocked() {
  while (rewriting_) done_cv_.Wait(&mu_);
  if (broken_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "journal ", path_, " is broken: ", broken_,
      "; restart devmemd (Open cuts the torn tail) or Rewrite it"));
}

absl::StatusOr<uint64_t> Journal::Write(absl::string_view payload) {
  if (payload.size() > kMaxJournalRecordBytes) {
    return RecordSizeError(path_, payload.size());
  }
  const std::string record = EncodeJournalRecord(payload);
  absl::MutexLock lock(&mu_);
  if (absl::Status writable = WritableLocked(); !writable.ok()) {
    return writable;
  }
  // Staged records go first, so the file keeps the order of the seqs. Their
  // failure is theirs (their waiters get it); this record is tried anyway.
  (void)WriteStagedLocked();
  if (absl::Status writable = WritableLocked(); !writable.ok()) {
    return writable;
  }
  if (const int err = WriteAllLocked(fd_.get_unowned(), record, end_);
      err != 0) {
    absl::Status status = JournalError(err, path_, "write");
    RollBackLocked(status);
    return status;
  }
  end_ += record.size();
  on_file_ = ++written_;
  return written_;
}

absl::StatusOr<uint64_t> Journal::Stage(absl::string_view payload) {
  if (payload.size() > kMaxJournalRecordBytes) {
    return RecordSizeError(path_, payload.size());
  }
  absl::MutexLock lock(&mu_);
  if (absl::Status writable = WritableLocked(); !writable.ok()) {
    return writable;
  }
  staged_ += EncodeJournalRecord(payload);
  const uint64_t seq = ++written_;
  if (staged_.size() >= kMaxStagedBytes) {
    absl::Status written = WriteStagedLocked();
    if (!written.ok()) return written;
  }
  return seq;
}

absl::Status Journal::WriteStagedLocked() {
  if (staged_.empty()) return absl::OkStatus();
  const uint64_t first = on_file_ + 1;
  on_file_ = written_;
  std::string group;
  group.swap(staged_);
  if (const int err = WriteAllLocked(fd_.get_unowned(), group, end_);
      err != 0) {
    absl::Status status = JournalError(err, path_, "write");
    RollBackLocked(status);
    if (failed_groups_.size() == kFailedGroupsKept) {
      failed_groups_.erase(failed_groups_.begin());
    }
    failed_groups_.push_back({first, written_, status});
    return status;
  }
  end_ += group.size();
  return absl::OkStatus();
}

absl::Status Journal::StagedFailureLocked(uint64_t seq) const {
  for (const FailedGroup& g : failed_groups_) {
    if (seq >= g.first && seq <= g.last) return g.status;
  }
  return absl::OkStatus();
}

void Journal::RollBackLocked(const absl::Status& cause) {
  // Roll back so no partial record stays, and make the cut durable so a record
  // reported as failed cannot come back after a crash.
  const int fd = fd_.get_unowned();
  const char* op = "ftruncate";
  int err = ::ftruncate(fd, static_cast<off_t>(end_)) != 0 ? errno : 0;
  if (err == 0 && sync_) {
    ++syncs_;
    // Not proof that earlier records are durable: a flush in flight may be
    // the call that gets (and clears) a writeback error instead.
    err = SyncData(fd);
    if (err != 0) {
      op = "fdatasync after ftruncate";
      FlushFailedLocked(err, op);
    }
  }
  if (err == 0) return;
  broken_ = absl::StrCat("a failed append could not be cut back to ", end_,
                         " bytes (", JournalError(err, path_, op).message(),
                         ") after: ", cause.message());
}

void Journal::Flush() {
  absl::MutexLock lock(&mu_);
  if (WritableLocked().ok()) (void)WriteStagedLocked();
  if (sync_) WantLocked(on_file_);
}

absl::Status Journal::WaitDurable(uint64_t seq) {
  absl::MutexLock lock(&mu_);
  if (seq > written_) {
    return absl::InvalidArgumentError(
        absl::StrCat("journal ", path_, ": record ", seq,
                     " was never written (last is ", written_, ")"));
  }
  if (seq > on_file_) {
    if (absl::Status writable = WritableLocked(); !writable.ok()) {
      return writable;
    }
    // Written now (a failure is kept in failed_groups_), or taken into the
    // snapshot of a Rewrite that ran meanwhile: either way seq <= on_file_.
    (void)WriteStagedLocked();
  }
  if (absl::Status failed = StagedFailureLocked(seq); !failed.ok()) {
    return failed;
  }
  if (!sync_ || seq <= durable_) return absl::OkStatus();
  WantLocked(seq);
  while (durable_ < seq && flush_error_.ok()) done_cv_.Wait(&mu_);
  if (durable_ >= seq) return absl::OkStatus();
  return flush_error_;
}

absl::Status Journal::Append(absl::string_view payload, bool durable) {
  absl::StatusOr<uint64_t> seq = Write(payload);
  if (!seq.ok()) return seq.status();
  return durable ? WaitDurable(*seq) : absl::OkStatus();
}

absl::Status Journal::Rewrite(const std::vector<std::string>& records) {
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].size() > kMaxJournalRecordBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "journal ", path_, ": rewrite record ", i, " of ", records[i].size(),
          " bytes is over the limit of ", kMaxJournalRecordBytes));
    }
  }
  absl::MutexLock lock(&mu_);
  while (rewriting_) done_cv_.Wait(&mu_);
  UniqueFd fd;
  uint64_t end = 0;
  if (absl::Status s = WriteTmpLocked(records, &fd, &end); !s.ok()) return s;
  // The flusher borrows fd_ without the lock: let it finish before the swap
  // closes it, and keep writers and new flushes out meanwhile.
  rewriting_ = true;
  while (flushing_) done_cv_.Wait(&mu_);
  rewriting_ = false;
  absl::Status status = SwapInLocked(std::move(fd), end);
  done_cv_.SignalAll();  // writers, other rewrites, waiters made durable
  work_cv_.Signal();     // a failed rename leaves the flush wanted
  return status;
}

absl::Status Journal::WriteTmpLocked(const std::vector<std::string>& records,
                                     UniqueFd* fd, uint64_t* end) {
  const std::string tmp = absl::StrCat(path_, ".tmp");
  fd->Reset(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd->valid()) return JournalError(errno, tmp, "create");
  auto discard = [&](absl::Status status) {
    fd->Reset();
    ::unlink(tmp.c_str());
    return status;
  };
  *end = 0;
  for (const std::string& r : records) {
    const std::string record = EncodeJournalRecord(r);
    if (const int err = WriteAllLocked(fd->get_unowned(), record, *end);
        err != 0) {
      return discard(JournalError(err, tmp, "write"));
    }
    *end += record.size();
  }
  if (::fsync(fd->get_unowned()) != 0) {
    return discard(JournalError(errno, tmp, "fsync"));
  }
  return absl::OkStatus();
}

absl::Status Journal::SwapInLocked(UniqueFd fd, uint64_t end) {
  const std::string tmp = absl::StrCat(path_, ".tmp");
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    absl::Status status = JournalError(errno, path_, "rename of the .tmp file");
    fd.Reset();
    ::unlink(tmp.c_str());
    return status;
  }
  // The path now names the new, fsynced file: append there whatever happens
  // next. It supersedes every record written so far, so all count as durable.
  fd_ = std::move(fd);
  end_ = end;
  broken_.clear();
  flush_error_ = absl::OkStatus();
  // Staged records are in the caller's `records` too.
  staged_.clear();
  on_file_ = written_;
  durable_ = written_;
  if (const int err = FsyncDir(DirName(path_)); err != 0) {
    return JournalError(
        err, path_,
        "fsync of the state directory after the rewrite (the new contents "
        "are in use but may not survive a crash)");
  }
  return absl::OkStatus();
}

uint64_t Journal::size_bytes() const {
  absl::MutexLock lock(&mu_);
  return end_;
}

uint64_t Journal::appends() const {
  absl::MutexLock lock(&mu_);
  return written_;
}

uint64_t Journal::syncs() const {
  absl::MutexLock lock(&mu_);
  return syncs_;
}

void Journal::InjectWriteFailureForTest(int err, size_t partial, int n) {
  absl::MutexLock lock(&mu_);
  inject_err_ = err;
  inject_partial_ = partial;
  inject_left_ = n;
}

}  // namespace devmem
