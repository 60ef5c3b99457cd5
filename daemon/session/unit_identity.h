#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace devmem {

// Where a process sits in systemd's cgroup tree, as sd-login reads it from
// /proc/<pid>/cgroup: the system unit (sd_pid_get_unit, e.g. "train.service"
// or "session-3.scope"), the unit inside a user manager
// (sd_pid_get_user_unit, for messages only: a user names those units
// freely) and the innermost slice (sd_pid_get_slice, e.g. "batch-gpu.slice";
// "-.slice" for the root). Empty strings where sd-login has no answer;
// `error` then says why, when there is a reason worth telling.
struct UnitIdentity {
  std::string unit;
  std::string user_unit;
  std::string slice;
  std::string error;
};

// Looks `pid` up. With a `pidfd` of the same process (SO_PEERPIDFD), the
// answer is dropped (error set) when that process has exited by the time its
// cgroup was read: its pid may already name another process. Without one
// (pidfd < 0; kernels before 6.5) that race is accepted. Blocking file reads
// under /proc; thread-safe.
UnitIdentity LookupUnitIdentity(pid_t pid, int pidfd);

// `slice` and every slice above it in systemd's naming, innermost first:
// "a-b-c.slice" -> {"a-b-c.slice", "a-b.slice", "a.slice"} (systemd nests
// "a-b.slice" under "a.slice"; see systemd.slice(5)). The root slice
// "-.slice" is not listed. Empty for a name that is not a slice.
std::vector<std::string> SliceAndParents(absl::string_view slice);

// Why `name` cannot be an allow_units entry ("" if it can): it must be a
// complete unit name that processes run in (.service, .scope, .socket,
// .mount, .swap; an instance, not a template).
std::string UnitRuleProblem(absl::string_view name);
// Why `name` cannot be an allow_slices entry ("" if it can): a valid slice
// name other than the root slice "-.slice".
std::string SliceRuleProblem(absl::string_view name);

}  // namespace devmem
