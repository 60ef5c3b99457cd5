#pragma once

// What devmem-fleet's commands share: exit codes, the global flags, the
// connections to the hosts, progress on stderr, and the report printed at
// the end (a table for people, the proto3 JSON of devmem.fleet.cli.Report
// with --json). reserve_commands.cc, host_commands.cc and
// rollout_command.cc hold the commands;
// main.cc parses the command line and dispatches.

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/fleet/connections.h"
#include "client/fleet/fleet_cli.pb.h"

ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(absl::Duration, timeout);
ABSL_DECLARE_FLAG(int32_t, parallel);
ABSL_DECLARE_FLAG(std::string, job);
ABSL_DECLARE_FLAG(int32_t, max_unavailable);
ABSL_DECLARE_FLAG(absl::Duration, deadline);

namespace devmem::fleetctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Hosts from the arguments, --hosts_file and stdin, and one mTLS channel
// to each; an error is a usage error (printed by the caller).
absl::StatusOr<std::unique_ptr<Connections>> OpenHosts(
    const std::vector<std::string>& args);

// "reserve: 37/64 hosts" on stderr, rewritten in place, only when stderr is
// a terminal; Finish() clears the line.
class Progress {
 public:
  explicit Progress(std::string what);
  void Update(size_t done, size_t total);
  void Finish();

 private:
  const std::string what_;
  const bool enabled_;
};

// Prints `report`: JSON with --json, else `table` lines on stdout and each
// failed host's error on stderr. Returns kExitOk if report.ok, else
// kExitFailure.
int PrintReport(const fleetcli::Report& report,
                const std::vector<std::string>& table);

// The proto3 JSON of `message` (field names as in the .proto, zero values
// printed), on one line or indented.
std::string ToJson(const google::protobuf::Message& message, bool indented);

// Usage error: prints "devmem-fleet: <message>" and returns kExitUsage.
int UsageError(const std::string& message);

size_t InFlight();

// The commands, each given the positional arguments after its name.
int Hosts(const std::vector<std::string>& args);
int Reserve(const std::vector<std::string>& args);
int Renew(const std::vector<std::string>& args);
int Release(const std::vector<std::string>& args);
int Cordon(const std::vector<std::string>& args);
int Uncordon(const std::vector<std::string>& args);
int Drain(const std::vector<std::string>& args);
int Watch(const std::vector<std::string>& args);
int Rollout(const std::vector<std::string>& args);

}  // namespace devmem::fleetctl
