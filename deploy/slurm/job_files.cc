#include "deploy/slurm/job_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace slurm {
namespace {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat("no ", path));
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(
          absl::StrCat(path, " is not readable by this user"));
    }
    return ErrnoStatus(err, absl::StrCat("open ", path));
  }
  std::string text(4096, '\0');
  const ssize_t n = read(fd.get_unowned(), text.data(), text.size());
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
  text.resize(static_cast<size_t>(n));
  return std::string{absl::StripAsciiWhitespace(text)};
}

}  // namespace

absl::StatusOr<JobFiles> JobFiles::For(std::string dir,
                                       absl::string_view job_id) {
  if (job_id.empty() || job_id.size() > 20 ||
      !std::all_of(job_id.begin(), job_id.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", job_id, "\" is not a Slurm job id (SLURM_JOB_ID: digits)"));
  }
  return JobFiles(std::move(dir), job_id);
}

JobFiles::JobFiles(std::string dir, absl::string_view job_id)
    : dir_(std::move(dir)),
      token_path_(absl::StrCat(dir_, "/job", job_id, ".token")),
      state_path_(absl::StrCat(dir_, "/job", job_id, ".state")) {}

absl::Status JobFiles::MakeDir() const {
  if (mkdir(dir_.c_str(), 0711) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", dir_));
  }
  struct stat st {};
  if (lstat(dir_.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", dir_));
  }
  if (!S_ISDIR(st.st_mode) || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ||
      st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir_, " must be a directory owned by uid ", geteuid(),
        " and writable by it alone; remove it and let the Prolog make it"));
  }
  return absl::OkStatus();
}

absl::Status JobFiles::WriteFile(const std::string& path,
                                 absl::string_view text, mode_t mode, uid_t uid,
                                 gid_t gid) const {
  const std::string tmp = absl::StrCat(path, ".new");
  unlink(tmp.c_str());  // left by a Prolog killed mid-write, if any
  UniqueFd fd(open(tmp.c_str(),
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  const std::string line = absl::StrCat(text, "\n");
  absl::Status status = absl::OkStatus();
  if (fchown(fd.get_unowned(), uid, gid) != 0) {
    status = ErrnoStatus(errno, absl::StrCat("chown ", tmp));
  } else if (write(fd.get_unowned(), line.data(), line.size()) !=
             static_cast<ssize_t>(line.size())) {
    status = ErrnoStatus(errno, absl::StrCat("write ", tmp));
  } else if (rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus(errno, absl::StrCat("rename to ", path));
  }
  if (!status.ok()) unlink(tmp.c_str());
  return status;
}

absl::Status JobFiles::WriteToken(absl::string_view token, uid_t uid,
                                  gid_t gid) const {
  return WriteFile(token_path_, token, 0400, uid, gid);
}

absl::Status JobFiles::WriteState(absl::string_view state) const {
  return WriteFile(state_path_, state, 0600, geteuid(), getegid());
}

absl::StatusOr<std::string> JobFiles::ReadToken() const {
  return ReadSmallFile(token_path_);
}

absl::StatusOr<std::string> JobFiles::ReadState() const {
  return ReadSmallFile(state_path_);
}

absl::Status JobFiles::Remove() const {
  for (const std::string& path : {token_path_, state_path_}) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("remove ", path));
    }
  }
  return absl::OkStatus();
}

}  // namespace slurm
}  // namespace devmem
