#pragma once

// Runs a program (an absolute path, no shell) and collects what it prints,
// within a deadline: the Prolog asks scontrol for the job's GRES and drains
// its node through scontrol. A program that outlives the timeout is killed.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace devmem {
namespace slurm {

struct CommandResult {
  int exit_code = -1;  // -1 if killed by a signal
  std::string output;  // stdout and stderr together
};

// DEADLINE_EXCEEDED if it ran past `timeout` (and was killed), NOT_FOUND if
// argv[0] cannot be executed; otherwise its exit code and output.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout);

}  // namespace slurm
}  // namespace devmem
