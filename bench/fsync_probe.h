#pragma once
// The write + fdatasync latency of the disk under a directory: what one
// journal group commit of devmemd costs there at least. Benches print it next
// to their journaled figures so that readers can tell the disk from the code.

#include <string>

#include "absl/status/statusor.h"

namespace devmem {

// p50 in microseconds of `rounds` (a 4 KiB pwrite at a new offset, then
// fdatasync) on a scratch file in `dir`, which is removed afterwards. An
// error names the step and errno (open, pwrite or fdatasync).
absl::StatusOr<double> FsyncP50Us(const std::string& dir, int rounds = 200);

// "tmpfs" when `dir` is on a tmpfs or ramfs (its fdatasync costs nothing),
// otherwise the filesystem's magic number in hex, after its name when it is
// a common one: "ext4 0xef53".
std::string FilesystemKind(const std::string& dir);

}  // namespace devmem
