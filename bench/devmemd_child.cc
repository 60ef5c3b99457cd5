#include "bench/devmemd_child.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace devmem {

absl::StatusOr<std::string> SteeredConfigText(const SteeredNicSpec& spec) {
  if (spec.pool_queues < 1 || spec.pool_queues > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a devmem pool of ", spec.pool_queues,
        " queues: devmemd takes 1..1024 (pool_queues, daemon/config.cc)"));
  }
  const uint32_t rules = std::max<uint32_t>(spec.rules, 256);
  return absl::StrCat(
      "nic_profiles { nic: \"lo\" pool_queues: ", spec.pool_queues,
      " combined_channels: ", spec.pool_queues + 24, " max_rules: ", rules,
      " }\n", "allow_uids: ", spec.uid, "\n",
      "max_sessions_per_uid: ", std::max<uint32_t>(spec.sessions + 16, 1024),
      "\n", "max_bindings_per_uid: ", spec.pool_queues + 16, "\n",
      "max_bindings_per_session: 8\n", "max_rules_per_session: ", rules, "\n",
      "max_rules_per_uid: ", std::max<uint32_t>(rules, 16384), "\n",
      "max_tickets_per_session: 1024\n");
}

absl::StatusOr<testing::Proc> StartDevmemd(std::vector<std::string> argv) {
  const std::string binary = argv.front();
  testing::Proc p = testing::Proc::Spawn(std::move(argv));
  if (!p.running()) {
    return absl::InternalError(absl::StrCat("could not spawn ", binary));
  }
  // "devmemd <version>: ready: ..."
  const auto ready = p.WaitLine("devmemd ");
  if (!ready || !absl::StrContains(*ready, ": ready: ")) {
    return absl::UnavailableError(
        absl::StrCat("devmemd did not get ready:\n", p.output()));
  }
  p.DrainInBackground();
  return p;
}

absl::StatusOr<std::vector<std::string>> SteeredDevmemdArgs(
    const std::string& devmemd, const std::string& runtime_dir,
    const std::string& state_dir, const std::string& config) {
  const std::string path = absl::StrCat(state_dir, "/devmemd.textproto");
  std::ofstream out(path, std::ios::trunc);
  out << config;
  out.close();
  if (!out) {
    return absl::InternalError(
        absl::StrCat("writing ", path, ": ", std::strerror(errno)));
  }
  return std::vector<std::string>{devmemd,
                                  "--nic_backend=simulated",
                                  "--simulated_state_dir=none",
                                  absl::StrCat("--config=", path),
                                  absl::StrCat("--runtime_dir=", runtime_dir),
                                  absl::StrCat("--state_dir=", state_dir),
                                  "--dbus="};
}

absl::StatusOr<testing::Proc> StartSteeredDevmemd(
    const std::string& devmemd, const std::string& runtime_dir,
    const std::string& state_dir, const SteeredNicSpec& spec) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("mkdir ", state_dir, ": ", ec.message()));
  }
  absl::StatusOr<std::string> config = SteeredConfigText(spec);
  if (!config.ok()) return config.status();
  auto args = SteeredDevmemdArgs(devmemd, runtime_dir, state_dir, *config);
  if (!args.ok()) return args.status();
  return StartDevmemd(*std::move(args));
}

}  // namespace devmem
