#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/nic/simulated/simulated_nic.h"
#include "kernel/nic_info.h"
#include "kernel/nic_inventory.h"

namespace devmem {

// A NicInventory that lays simulated NICs over a base inventory (normally the
// kernel's), so a demo can run on a real link such as a veth that carries its
// traffic while the devmem configuration is simulated.
//
// For a simulated name, channels, rings, features and queues come from the
// SimulatedNic and every devmem capability is reported supported with reason
// "simulated" (a failing simulated read is reported like a failing probe);
// the link facts (MAC, MTU, driver, ...) stay the base's. A simulated NIC with
// no base link is listed with made-up link facts of kind "simulated". Every
// other link passes through unchanged.
//
// Ifindexes: NicControl calls are addressed by ifindex, so a simulated NIC
// that overlays a link must carry that link's ifindex, and one without a link
// must not take another link's ifindex. Create() checks both once; a link
// recreated later (new ifindex) is not noticed.
//
// Thread-safe if the base is; holds no state of its own.
class SimulatedNicInventory final : public NicInventory {
 public:
  // `base` may be null: then only the simulated NICs exist.
  // FAILED_PRECONDITION when an ifindex does not fit (see above); errors of
  // the base's IfIndex()/List() otherwise.
  static absl::StatusOr<std::unique_ptr<SimulatedNicInventory>> Create(
      std::unique_ptr<NicInventory> base, std::shared_ptr<SimulatedNic> nic);

  // Fills in every spec whose ifindex is 0: the base link's ifindex when the
  // name exists there, otherwise a made-up one from kFirstMadeUpIfIndex up
  // that neither a base link nor another spec uses.
  static absl::Status AssignIfIndexes(NicInventory* base,
                                      std::vector<SimulatedNicSpec>* specs);
  // Far above what the kernel hands out on a host in practice.
  static constexpr uint32_t kFirstMadeUpIfIndex = 1u << 30;

  absl::StatusOr<std::vector<NicInfo>> List() override;
  absl::StatusOr<NicInfo> Get(absl::string_view name) override;
  absl::StatusOr<uint32_t> IfIndex(absl::string_view name) override;
  // "simulated (over kernel)", or "simulated" without a base.
  std::string BackendName() const override;

 private:
  SimulatedNicInventory(std::unique_ptr<NicInventory> base,
                        std::shared_ptr<SimulatedNic> nic);

  // The NIC as the simulation shows it, on `link`.
  NicInfo Simulate(LinkInfo link, const SimulatedNicSpec& spec);
  // A NOT_FOUND from the base (or a fresh one), naming the simulated NICs too.
  absl::Status NotFound(absl::string_view name,
                        const absl::Status& base_status);

  const std::unique_ptr<NicInventory> base_;  // may be null
  const std::shared_ptr<SimulatedNic> nic_;
};

}  // namespace devmem
