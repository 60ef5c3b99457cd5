#pragma once

// Where the Prolog leaves a job's reservation for the job's tasks and for the
// Epilog, one flat directory (root, 0711: nobody can list it):
//   job<ID>.token  the token, owned by the job's uid, mode 0400: only that
//                  user (and root) can read it;
//   job<ID>.state  the reservation id and NICs, root only (0600): proof for
//                  the Epilog that this node reserved something.
// Files are written under a temporary name and renamed, never followed
// through a symlink, and removed idempotently.

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace devmem {
namespace slurm {

class JobFiles {
 public:
  // INVALID_ARGUMENT unless job_id is a Slurm job id (digits).
  static absl::StatusOr<JobFiles> For(std::string dir,
                                      absl::string_view job_id);

  // Creates the directory (0711) if missing; refuses one that is a symlink,
  // not a directory, or writable by others than its owner.
  absl::Status MakeDir() const;
  absl::Status WriteToken(absl::string_view token, uid_t uid, gid_t gid) const;
  absl::Status WriteState(absl::string_view state) const;
  // NOT_FOUND if there is none; PERMISSION_DENIED if it is not ours to read.
  absl::StatusOr<std::string> ReadToken() const;
  absl::StatusOr<std::string> ReadState() const;
  // Removes both files; missing ones are fine.
  absl::Status Remove() const;

  const std::string& token_path() const { return token_path_; }
  const std::string& state_path() const { return state_path_; }

 private:
  JobFiles(std::string dir, absl::string_view job_id);
  absl::Status WriteFile(const std::string& path, absl::string_view text,
                         mode_t mode, uid_t uid, gid_t gid) const;

  std::string dir_;
  std::string token_path_;
  std::string state_path_;
};

}  // namespace slurm
}  // namespace devmem
