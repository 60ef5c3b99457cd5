#pragma once
// Which applied NIC serves a GPU: one with free pool queues before a full
// one; then the best PCIe distance class (PIX, PXB, PHB, NODE, SYS; a NIC
// that is not on PCI counts as SYS), then the most free queues, then the
// name. Reads sysfs through the PciTopology;
// stateless. Errors: INVALID_ARGUMENT (not a PCI address), NOT_FOUND (no such
// device), FAILED_PRECONDITION (no applied NIC).

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/nic/nic_profiles.h"
#include "kernel/nic_inventory.h"
#include "kernel/pci_topology.h"

namespace devmem {

absl::StatusOr<NicRecord*> NearestNic(
    absl::string_view gpu_pci_address,
    const std::vector<std::unique_ptr<NicRecord>>& nics,
    NicInventory& inventory, const PciTopology& topology);

// The distance class of `gpu` to `nic` (SYS if the NIC is not on PCI).
PciDistance GpuNicDistance(const PciDevice& gpu, const NicInfo& nic,
                           const PciTopology& topology);

}  // namespace devmem
