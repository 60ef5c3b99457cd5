// devmem-slurm: Slurm's Prolog, Epilog and TaskProlog for devmem queues
// (docs/SLURM.md). slurm.conf names the wrapper scripts beside this file,
// which run `devmem-slurm prolog|epilog|task-prolog`.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/libdevmem.h"
#include "deploy/slurm/hooks.h"

ABSL_FLAG(std::string, runtime_dir, std::string(devmem::kDefaultRuntimeDir),
          "devmemd's runtime directory (its sockets).");
ABSL_FLAG(std::string, token_dir, "/run/devmem-slurm",
          "Where the Prolog leaves each job's token (job<ID>.token, readable "
          "by the job's user alone) and state.");
ABSL_FLAG(std::string, scontrol, "/usr/bin/scontrol",
          "scontrol, by absolute path (the Prolog runs with no PATH).");
ABSL_FLAG(std::string, nic, "",
          "The NIC an untyped devmemq GRES is reserved on; empty: the one NIC "
          "with a devmem pool. Typed GRES (devmemq:eth1:2) name their NIC.");
ABSL_FLAG(absl::Duration, ttl_margin, absl::Minutes(10),
          "Added to the job's time limit for the reservation's TTL (the "
          "Epilog releases it earlier).");
ABSL_FLAG(absl::Duration, max_ttl, absl::Hours(24),
          "The TTL for jobs without a time limit, and the most asked for; "
          "keep it within devmemd's max_reservation_ttl_s.");
ABSL_FLAG(absl::Duration, scontrol_timeout, absl::Seconds(20),
          "How long one scontrol call may take.");
ABSL_FLAG(bool, drain_on_failure, true,
          "When the prolog or epilog fails, drain the node with the reason "
          "(scontrol update), so that sinfo -R says why.");

namespace {

constexpr char kUsage[] =
    "devmem-slurm prolog|epilog|task-prolog [flags]\n\n"
    "Slurm hooks that give jobs devmem queues (GRES devmemq) through the "
    "local devmemd:\n"
    "  prolog       (slurm.conf Prolog=, as root) reserves this node's "
    "devmemq count\n"
    "               for the job's uid; the token goes to "
    "--token_dir/job<ID>.token (0400).\n"
    "  epilog       (Epilog=, as root) releases the job's reservations; safe "
    "to repeat.\n"
    "  task-prolog  (TaskProlog=, as the user) prints export "
    "DEVMEM_RESERVATION=<token>.\n"
    "A failing prolog/epilog prints why and drains the node with that "
    "reason.\nSee docs/SLURM.md.";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    absl::FPrintF(stderr, "usage: %s\n", kUsage);
    return 2;
  }
  devmem::slurm::HookConfig config;
  config.runtime_dir = absl::GetFlag(FLAGS_runtime_dir);
  config.token_dir = absl::GetFlag(FLAGS_token_dir);
  config.scontrol = absl::GetFlag(FLAGS_scontrol);
  config.nic = absl::GetFlag(FLAGS_nic);
  config.ttl_margin = absl::GetFlag(FLAGS_ttl_margin);
  config.max_ttl = absl::GetFlag(FLAGS_max_ttl);
  config.scontrol_timeout = absl::GetFlag(FLAGS_scontrol_timeout);
  config.drain_on_failure = absl::GetFlag(FLAGS_drain_on_failure);
  const std::string hook = args[1];
  if (hook == "prolog") return devmem::slurm::RunProlog(config);
  if (hook == "epilog") return devmem::slurm::RunEpilog(config);
  if (hook == "task-prolog") return devmem::slurm::RunTaskProlog(config);
  absl::FPrintF(stderr, "devmem-slurm: unknown hook \"%s\"\nusage: %s\n", hook,
                kUsage);
  return 2;
}
