#include "daemon/nic/gpu_affinity.h"

#include <cstdint>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace devmem {

PciDistance GpuNicDistance(const PciDevice& gpu, const NicInfo& nic,
                           const PciTopology& topology) {
  if (nic.link.pci_address.empty()) return PciDistance::kSys;
  absl::StatusOr<PciDevice> dev = topology.Device(nic.link.pci_address);
  if (!dev.ok()) return PciDistance::kSys;
  return Distance(gpu, *dev);
}

absl::StatusOr<NicRecord*> NearestNic(
    absl::string_view gpu_pci_address,
    const std::vector<std::unique_ptr<NicRecord>>& nics,
    NicInventory& inventory, const PciTopology& topology) {
  absl::StatusOr<PciDevice> gpu = topology.Device(gpu_pci_address);
  if (!gpu.ok()) {
    return absl::Status(
        gpu.status().code(),
        absl::StrCat("gpu_pci_address: ", gpu.status().message()));
  }
  using Key = std::tuple<int, int, int64_t, std::string>;
  NicRecord* best = nullptr;
  Key best_key;
  for (const auto& nic : nics) {
    if (nic->state != devmem::v1::PROFILE_STATE_APPLIED) continue;
    absl::StatusOr<NicInfo> info = inventory.Get(nic->name);
    const PciDistance d =
        info.ok() ? GpuNicDistance(*gpu, *info, topology) : PciDistance::kSys;
    // Smaller is better: a NIC with free queues before a full one, then
    // the distance, then more free queues, then the name.
    const size_t free = nic->pool.free_count();
    const Key key{free == 0 ? 1 : 0, static_cast<int>(d),
                  -static_cast<int64_t>(free), nic->name};
    if (best == nullptr || key < best_key) {
      best = nic.get();
      best_key = key;
    }
  }
  if (best == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("no NIC is ready for devmem near GPU ", gpu_pci_address,
                     "; see `devmemctl nic show`"));
  }
  return best;
}

}  // namespace devmem
