#pragma once
// devmemd as a child of a bench: the configuration of a simulated devmem NIC
// sized for a job, and the daemon started and waited for. Shared by
// load_bench and cold_start_bench.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/process.h"

namespace devmem {

// A simulated devmem NIC over lo with a pool of `pool_queues` RX queues
// (one per binding) and room for `rules` steering rules, all of them for
// `uid`, some in one session.
struct SteeredNicSpec {
  uint32_t pool_queues = 1;
  uint32_t rules = 256;
  uint32_t sessions = 1;
  uid_t uid = 0;
};

// The DaemonConfig textproto for `spec`: nic_profiles for lo (combined
// channels = pool + 24, so RSS keeps queues of its own) and the per-session
// and per-uid limits raised to what the spec needs. INVALID_ARGUMENT when
// the spec is past what devmemd accepts (pool_queues 1..1024,
// daemon/config.cc CheckProfile).
absl::StatusOr<std::string> SteeredConfigText(const SteeredNicSpec& spec);

// Starts `argv` (devmemd and its flags) and waits until it prints its
// "ready:" line; its log is drained from then on so that it never blocks.
// UNAVAILABLE with the log when it stops or does not get ready in 30 s.
absl::StatusOr<testing::Proc> StartDevmemd(std::vector<std::string> argv);

// The flags of a journaled devmemd on the simulated backend: `config` written
// to <state_dir>/devmemd.textproto, the journal in `state_dir` (which must
// exist), sockets in `runtime_dir`, the simulated NIC's state in memory.
absl::StatusOr<std::vector<std::string>> SteeredDevmemdArgs(
    const std::string& devmemd, const std::string& runtime_dir,
    const std::string& state_dir, const std::string& config);

// All of the above: creates `state_dir`, writes the config for `spec`, and
// starts that devmemd, waiting until it is ready.
absl::StatusOr<testing::Proc> StartSteeredDevmemd(
    const std::string& devmemd, const std::string& runtime_dir,
    const std::string& state_dir, const SteeredNicSpec& spec);

}  // namespace devmem
