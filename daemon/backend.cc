#include "daemon/backend.h"

#include <algorithm>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "daemon/nic/simulated/simulated_nic_inventory.h"
#include "kernel/kernel_nic_control.h"
#include "kernel/kernel_nic_inventory.h"

namespace devmem {

absl::StatusOr<Backend> MakeBackend(const devmem::v1::DaemonConfig& config,
                                    const BackendOptions& options) {
  auto inventory = KernelNicInventory::Create();
  if (!inventory.ok()) {
    return absl::Status(inventory.status().code(),
                        absl::StrCat("cannot read NICs from the kernel: ",
                                     inventory.status().message()));
  }
  Backend b;
  if (config.nic_backend() == "simulated") {
    std::vector<SimulatedNicSpec> specs;
    std::vector<std::string> names;
    for (const auto& p : config.nic_profiles()) {
      SimulatedNicSpec spec;
      spec.name = p.nic();
      // A profile that asks for more channels simulates a NIC that has them.
      spec.combined_max = std::max(spec.combined_max, p.combined_channels());
      // And one with a rule quota larger than its table has the table.
      spec.rule_table_size = std::max(spec.rule_table_size, p.max_rules());
      specs.push_back(spec);
      names.push_back(p.nic());
    }
    absl::Status s =
        SimulatedNicInventory::AssignIfIndexes(inventory->get(), &specs);
    if (!s.ok()) return s;
    SimulatedNic::Options sim_options;
    sim_options.state_dir = options.simulated_state_dir;
    auto sim = SimulatedNic::Create(std::move(specs), sim_options);
    if (!sim.ok()) return sim.status();
    const std::string restored =
        options.simulated_state_dir.empty()
            ? ""
            : absl::StrCat("; state in ", options.simulated_state_dir, ": ",
                           (*sim)->load_report());
    std::shared_ptr<SimulatedNic> shared(std::move(*sim));
    auto inv = SimulatedNicInventory::Create(std::move(*inventory), shared);
    if (!inv.ok()) return inv.status();
    b.inventory = std::move(*inv);
    b.control = shared;
    b.description = absl::StrCat(
        "SIMULATED devmem NICs (no hardware is touched): ",
        names.empty() ? "(none: add nic_profiles)" : absl::StrJoin(names, ", "),
        restored);
    return b;
  }
  auto control = KernelNicControl::Create();
  if (!control.ok()) {
    return absl::Status(control.status().code(),
                        absl::StrCat("cannot open the kernel NIC interfaces: ",
                                     control.status().message()));
  }
  b.inventory = std::move(*inventory);
  b.control = std::move(*control);
  b.description = "kernel (real NICs via ethtool netlink, SIOCETHTOOL, netdev)";
  return b;
}

}  // namespace devmem
