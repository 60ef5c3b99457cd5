#pragma once

#include <net/if.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "daemon/daemon.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/nic/simulated/simulated_nic_inventory.h"
#include "kernel/testing/fake_nic_inventory.h"

namespace devmem {

// An in-process devmemd whose only NIC is a simulated devmem NIC over lo, and
// that NIC (owned by the daemon's backend) for the test to inspect.
struct SimulatedLoDaemon {
  std::unique_ptr<Daemon> daemon;
  SimulatedNic* sim = nullptr;
};

// Starts it with `options` (config finalized, naming lo in nic_profiles); the
// inventory, backend and version are filled in here. With `sim_state_dir`,
// the simulated NIC keeps its state there and gives each binding an anchor
// file, as `devmemd --nic_backend=simulated` does; without, it has no anchors.
inline absl::StatusOr<SimulatedLoDaemon> StartSimulatedLoDaemon(
    Daemon::Options options, const std::string& sim_state_dir = "") {
  SimulatedNicSpec spec;
  spec.name = "lo";
  spec.ifindex = ::if_nametoindex("lo");
  SimulatedNic::Options sim_options;
  sim_options.state_dir = sim_state_dir;
  auto sim = SimulatedNic::Create({spec}, sim_options);
  if (!sim.ok()) return sim.status();
  std::shared_ptr<SimulatedNic> shared(std::move(*sim));
  auto inv = SimulatedNicInventory::Create(
      std::make_unique<FakeNicInventory>(LoopbackOnly()), shared);
  if (!inv.ok()) return inv.status();
  options.inventory = std::move(*inv);
  options.nic_control = shared;
  options.static_status.set_version("test");
  auto d = Daemon::Start(std::move(options));
  if (!d.ok()) return d.status();
  return SimulatedLoDaemon{*std::move(d), shared.get()};
}

}  // namespace devmem
