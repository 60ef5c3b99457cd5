#include "daemon/state/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
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

// "journal <path>: <strerror> (errno N, in <op>); <hint>". ENOSPC/EDQUOT ->
// RESOURCE_EXHAUSTED (the caller refuses new work), anything else ->
// UNAVAILABLE. Keeps ErrnoStatus's payload so StatusErrno() works.
absl::Status JournalError(int err, absl::string_view path,
                          absl::string_view op) {
  const absl::StatusCode code = (err == ENOSPC || err == EDQUOT)
                                    ? absl::StatusCode::kResourceExhausted
                                    : absl::StatusCode::kUnavailable;
  absl::Status out(
      code, absl::StrCat("journal ", path, ": ", std::strerror(err), " (errno ",
                         err, ", in ", op, "); ", HintFor(err)));
  ErrnoStatus(err, path).ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) {
        out.SetPayload(url, payload);
      });
  return out;
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
  struct stat st {};
  if (::fstat(fd.get_unowned(), &st) != 0) {
    return JournalError(errno, path, "fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("journal ", path, " is not a regular file; remove it"));
  }

  std::string bytes;
  if (const int err =
          ReadAll(fd.get_unowned(), static_cast<uint64_t>(st.st_size), &bytes);
      err != 0) {
    return JournalError(err, path, "read");
  }
  JournalScan local;
  JournalScan& result = scan != nullptr ? *scan : local;
  result = ScanJournal(bytes);
  bytes.clear();
  if (result.dropped_bytes > 0) {
    if (::ftruncate(fd.get_unowned(), static_cast<off_t>(result.valid_bytes)) !=
            0 ||
        ::fsync(fd.get_unowned()) != 0) {
      return JournalError(
          errno, path,
          absl::StrCat("cutting off the bad tail (", result.tail_problem, ")"));
    }
  }
  // A leftover of a Rewrite that crashed before its rename; never live data.
  const std::string tmp = absl::StrCat(path, ".tmp");
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return JournalError(errno, tmp, "remove stale temporary file");
  }
  return absl::WrapUnique(new Journal(std::move(options.path), options.sync,
                                      std::move(fd), result.valid_bytes));
}

Journal::Journal(std::string path, bool sync, UniqueFd fd, uint64_t end)
    : path_(std::move(path)), sync_(sync), fd_(std::move(fd)), end_(end) {}

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

absl::Status Journal::Append(absl::string_view payload, bool durable) {
  if (payload.size() > kMaxJournalRecordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("journal ", path_, ": record of ", payload.size(),
                     " bytes is over the limit of ", kMaxJournalRecordBytes));
  }
  const std::string record = EncodeJournalRecord(payload);
  absl::MutexLock lock(&mu_);
  if (!broken_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "journal ", path_, " is broken: ", broken_,
        "; restart devmemd (Open cuts the torn tail) or Rewrite it"));
  }
  const int fd = fd_.get_unowned();
  int err = WriteAllLocked(fd, record, end_);
  const char* op = "write";
  if (err == 0 && sync_ && durable && ::fdatasync(fd) != 0) {
    err = errno;
    op = "fdatasync";
  }
  if (err == 0) {
    end_ += record.size();
    ++appends_;
    return absl::OkStatus();
  }
  absl::Status status = JournalError(err, path_, op);
  // Roll back so no partial record stays, and make the cut durable so a record
  // reported as failed cannot come back after a crash.
  const char* undo_op = "ftruncate";
  int undo_err = ::ftruncate(fd, static_cast<off_t>(end_)) != 0 ? errno : 0;
  if (undo_err == 0 && sync_ && ::fdatasync(fd) != 0) {
    undo_err = errno;
    undo_op = "fdatasync after ftruncate";
  }
  if (undo_err != 0) {
    broken_ = absl::StrCat("a failed append could not be cut back to ", end_,
                           " bytes (",
                           JournalError(undo_err, path_, undo_op).message(),
                           ") after: ", status.message());
  }
  return status;
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
  return RewriteLocked(records);
}

absl::Status Journal::RewriteLocked(const std::vector<std::string>& records) {
  const std::string tmp = absl::StrCat(path_, ".tmp");
  UniqueFd fd(
      ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return JournalError(errno, tmp, "create");
  auto discard = [&](absl::Status status) {
    fd.Reset();
    ::unlink(tmp.c_str());
    return status;
  };
  uint64_t end = 0;
  for (const std::string& r : records) {
    const std::string record = EncodeJournalRecord(r);
    if (const int err = WriteAllLocked(fd.get_unowned(), record, end);
        err != 0) {
      return discard(JournalError(err, tmp, "write"));
    }
    end += record.size();
  }
  if (::fsync(fd.get_unowned()) != 0) {
    return discard(JournalError(errno, tmp, "fsync"));
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    return discard(JournalError(errno, path_, "rename of the .tmp file"));
  }
  // The path now names the new file: append there whatever happens next.
  fd_ = std::move(fd);
  end_ = end;
  broken_.clear();
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
  return appends_;
}

void Journal::InjectWriteFailureForTest(int err, size_t partial, int n) {
  absl::MutexLock lock(&mu_);
  inject_err_ = err;
  inject_partial_ = partial;
  inject_left_ = n;
}

}  // namespace devmem
