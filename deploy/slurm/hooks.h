#pragma once

// devmem-slurm's three hooks (docs/SLURM.md):
//   prolog       (root, every allocated node, PrologFlags=Alloc) reserves the
//                job's devmemq queues in the local devmemd for the job's uid
//                and leaves the token readable by that user alone;
//   epilog       (root, always, also after a failed Prolog or scancel)
//                releases them, idempotently;
//   task-prolog  (the job's user, before each task) prints
//                `export DEVMEM_RESERVATION=<token>`, which Slurm puts into
//                the task's environment.
// A failing prolog or epilog says why on stderr and, with drain_on_failure,
// drains its node with that reason, so `sinfo -R` shows it.

#include <string>

#include "absl/time/time.h"

namespace devmem {
namespace slurm {

struct HookConfig {
  std::string runtime_dir;  // devmemd's
  std::string token_dir;    // JobFiles' directory
  std::string scontrol;     // absolute path: the Prolog has no PATH
  // The NIC an untyped devmemq is taken from; "" = the one NIC with a pool.
  std::string nic;
  absl::Duration ttl_margin;  // added to the job's time limit
  absl::Duration max_ttl;     // for UNLIMITED jobs, and the cap
  absl::Duration scontrol_timeout;
  bool drain_on_failure = true;
};

// Each returns the hook's exit status (0: go on; non-zero: Slurm fails the
// job's start there, or marks the Epilog failed).
int RunProlog(const HookConfig& config);
int RunEpilog(const HookConfig& config);
int RunTaskProlog(const HookConfig& config);

}  // namespace slurm
}  // namespace devmem
