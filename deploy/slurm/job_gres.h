#pragma once

// What Slurm allocated to a job on one node, read from the text of
// `scontrol show job -d <id>`: the devmemq count per GRES type ("" for an
// untyped devmemq) and the job's time limit. The Prolog's environment carries
// neither, so devmem-slurm asks scontrol (docs/SLURM.md).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace devmem {
namespace slurm {

struct JobGres {
  // devmemq count by type on the node ("" = untyped); empty: none asked.
  std::map<std::string, uint32_t> queues;
  // The job's TimeLimit; nullopt for UNLIMITED.
  std::optional<absl::Duration> time_limit;
};

// Expands a Slurm hostlist ("n[1-3,7],gpu[01-02]x,login") into names.
// INVALID_ARGUMENT for an unbalanced bracket or a bad range.
absl::StatusOr<std::vector<std::string>> ExpandHostlist(absl::string_view list);

// Parses Slurm's TimeLimit ("UNLIMITED", "MM", "MM:SS", "HH:MM:SS",
// "D-HH", "D-HH:MM", "D-HH:MM:SS"): nullopt for UNLIMITED.
absl::StatusOr<std::optional<absl::Duration>> ParseTimeLimit(
    absl::string_view text);

// `scontrol show job -d` output → what `node` got. The per-node detail lines
// ("Nodes=n[1-3] CPU_IDs=0-1 Mem=0 GRES=devmemq(CNT:2),gpu:a100(CNT:1)")
// name the counts; a node absent from them got no GRES. NOT_FOUND if the
// text is not a job's, INVALID_ARGUMENT if a field cannot be read.
absl::StatusOr<JobGres> ParseJobGres(absl::string_view scontrol_text,
                                     absl::string_view node);

}  // namespace slurm
}  // namespace devmem
