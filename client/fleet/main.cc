// devmem-fleet: a job launcher's and an operator's command line for a fleet
// of devmem-agents (docs/FLEET.md, "devmem-fleet"). Exit codes: 0 success,
// 1 the operation failed (on any host), 2 usage.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/fleet/cli.h"

namespace {

using Run = std::function<int(const std::vector<std::string>&)>;

struct CommandInfo {
  Run run;
  const char* brief;
};

const std::map<std::string, CommandInfo>& Commands() {
  static const auto* commands = new std::map<std::string, CommandInfo>{
      {"hosts",
       {devmem::fleetctl::Hosts, "every host's inventory in one table"}},
      {"reserve",
       {devmem::fleetctl::Reserve,
        "--job J --queues N [--per_gpu] [--ttl D]: all hosts or none; prints "
        "each host's DEVMEM_RESERVATION"}},
      {"renew",
       {devmem::fleetctl::Renew,
        "--job J [--ttl D] [--every D]: keep a job's reservations alive"}},
      {"release", {devmem::fleetctl::Release, "--job J: release everywhere"}},
      {"watch",
       {devmem::fleetctl::Watch,
        "[--since REV] [--count N]: every host's events, tagged by host"}},
      {"cordon", {devmem::fleetctl::Cordon, "--reason R: refuse new work"}},
      {"uncordon", {devmem::fleetctl::Uncordon, "accept new work again"}},
      {"drain",
       {devmem::fleetctl::Drain,
        "--reason R [--max_unavailable K] [--deadline D]: cordon and wait "
        "for jobs to end, K hosts at a time"}},
      {"rollout",
       {devmem::fleetctl::Rollout,
        "--profile F [--canary 1] [--max_unavailable K] [--drain]: a NIC "
        "profile, canary first, then waves; each wave confirmed if healthy, "
        "else reverted"}},
  };
  return *commands;
}

std::string UsageText() {
  std::string text =
      "reserves devmem queues for jobs across a fleet of devmem-agents (all "
      "hosts or none), cordons and drains hosts, and rolls out NIC profiles, "
      "over mutual TLS.\n\n"
      "Usage: devmem-fleet COMMAND [flags] HOST:PORT... (or --hosts_file F, "
      "or - for stdin)\n\nCommands:\n";
  for (const auto& [name, info] : Commands()) {
    absl::StrAppend(&text, "  ", name, "  ", info.brief, "\n");
  }
  absl::StrAppend(&text,
                  "\nCredentials: --ca, --cert, --key (or $DEVMEM_FLEET_CA, "
                  "$DEVMEM_FLEET_CERT, $DEVMEM_FLEET_KEY, or the same flags "
                  "in a file: --flagfile=FILE). --json on every "
                  "command. Exit: 0 ok, 1 failed, 2 usage.");
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(UsageText());
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view path) {
    return absl::StrContains(path, "client/fleet/");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() < 2) {
    return devmem::fleetctl::UsageError(
        "name a command (devmem-fleet --help lists them)");
  }
  auto it = Commands().find(rest[1]);
  if (it == Commands().end()) {
    return devmem::fleetctl::UsageError(absl::StrCat(
        "unknown command \"", rest[1], "\"; devmem-fleet --help lists them"));
  }
  std::vector<std::string> args(rest.begin() + 2, rest.end());
  const int rc = it->second.run(args);
  // Everything is printed; skip the gRPC library's orderly shutdown (tens of
  // milliseconds of joining its threads) that a short-lived CLI need not pay.
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}
