#include "bench/fsync_probe.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kernel/unique_fd.h"

namespace devmem {

absl::StatusOr<double> FsyncP50Us(const std::string& dir, int rounds) {
  if (rounds < 1) return absl::InvalidArgumentError("rounds must be >= 1");
  const std::string path = absl::StrCat(dir, "/fsync_probe.", ::getpid());
  UniqueFd fd(
      ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) {
    return absl::InternalError(
        absl::StrCat("open ", path, ": ", std::strerror(errno)));
  }
  const std::string block(4096, 'j');
  std::vector<double> us;
  us.reserve(static_cast<size_t>(rounds));
  absl::Status failed;
  for (int i = 0; i < rounds && failed.ok(); ++i) {
    const absl::Time start = absl::Now();
    if (::pwrite(fd.get_unowned(), block.data(), block.size(),
                 static_cast<off_t>(i) * 4096) !=
        static_cast<ssize_t>(block.size())) {
      failed = absl::InternalError(
          absl::StrCat("pwrite ", path, ": ", std::strerror(errno)));
    } else if (::fdatasync(fd.get_unowned()) != 0) {
      failed = absl::InternalError(
          absl::StrCat("fdatasync ", path, ": ", std::strerror(errno)));
    }
    us.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
  }
  ::unlink(path.c_str());
  if (!failed.ok()) return failed;
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

std::string FilesystemKind(const std::string& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) {
    return absl::StrCat("unknown (statfs: ", std::strerror(errno), ")");
  }
  const auto magic = static_cast<uint64_t>(s.f_type);
  if (magic == TMPFS_MAGIC || magic == RAMFS_MAGIC) return "tmpfs";
  const char* name = magic == EXT4_SUPER_MAGIC    ? "ext4 "
                     : magic == XFS_SUPER_MAGIC   ? "xfs "
                     : magic == BTRFS_SUPER_MAGIC ? "btrfs "
                                                  : "";
  return absl::StrFormat("%s0x%x", name, magic);
}

}  // namespace devmem
