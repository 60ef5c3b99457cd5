#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernel/nic_control.h"
#include "kernel/nic_inventory.h"
#include "proto/devmem/v1/config.pb.h"

namespace devmem {

// The NIC backend a daemon runs on: what it reads NICs with and what it
// changes them with.
struct Backend {
  std::unique_ptr<NicInventory> inventory;
  std::shared_ptr<NicControl> control;
  // One line for the log and status: which backend is active and why.
  std::string description;
};

struct BackendOptions {
  // Simulated backend only: the directory where the simulated NICs keep their
  // state and binding anchors so that both outlive the daemon process, as
  // real NIC settings and netlink sockets do (SimulatedNic::Options). Empty:
  // in memory, gone with the daemon. Use a tmpfs (e.g. <runtime_dir>/simnic)
  // so that a reboot forgets it.
  std::string simulated_state_dir;
};

// Builds the backend `config.nic_backend()` names:
// - "kernel": the real NICs (KernelNicInventory + KernelNicControl).
// - "simulated": one simulated devmem NIC per nic_profiles entry, overlaying
//   the real link of that name when there is one (so sockets bound to it
//   still carry traffic), over the real inventory. With a state dir the
//   description ends with what was restored from it.
// Errors say which part failed (e.g. no ethtool netlink family).
absl::StatusOr<Backend> MakeBackend(const devmem::v1::DaemonConfig& config,
                                    const BackendOptions& options = {});

}  // namespace devmem
