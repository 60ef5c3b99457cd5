#pragma once
// GPUs and accelerators from sysfs, and the PCIe distance between two PCI
// devices, named as `nvidia-smi topo -m` names it. Computed from the devices'
// canonical sysfs paths (/sys/devices/pciDDDD:BB/<root port>/.../<device>):
//
//   PIX   at most one PCIe switch between them (same switch)
//   PXB   several bridges, but not the host bridge
//   PHB   the same host bridge (PCIe root complex), different root ports
//   NODE  different host bridges on the same NUMA node
//   SYS   across NUMA nodes (the CPUs' interconnect)
//
// The root is a parameter so tests can build fake trees; production reads
// "/sys". Stateless and thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace devmem {

struct PciDevice {
  std::string address;  // "0000:3b:00.0"
  uint16_t vendor = 0;
  uint16_t device = 0;
  uint32_t pci_class = 0;  // 24 bits: class, subclass, prog-if
  std::string driver;      // "" if none bound
  int numa_node = -1;      // -1 if unknown
  // "pci0000:3a" (the host bridge), then the PCI addresses from the root
  // port down to the device itself.
  std::vector<std::string> path;
};

enum class PciDistance { kPix, kPxb, kPhb, kNode, kSys };

// "PIX", "PXB", "PHB", "NODE", "SYS".
const char* PciDistanceName(PciDistance d);

// How far apart `a` and `b` are (symmetric). Two devices with unknown NUMA
// nodes on different host bridges count as NODE (a machine without NUMA).
PciDistance Distance(const PciDevice& a, const PciDevice& b);

// True for the classes that are GPUs or accelerators: 0x0300 (VGA), 0x0302
// (3D controller), 0x1200 (processing accelerator).
bool IsAccelerator(uint32_t pci_class);

class PciTopology {
 public:
  explicit PciTopology(std::string sysfs_root = "/sys");

  // Every GPU and accelerator, sorted by address. No PCI bus in sysfs, or no
  // such device: an empty list, not an error.
  absl::StatusOr<std::vector<PciDevice>> Accelerators() const;
  // One device by address. INVALID_ARGUMENT for a malformed address,
  // NOT_FOUND if sysfs has no such device.
  absl::StatusOr<PciDevice> Device(absl::string_view address) const;

 private:
  std::string root_;
};

}  // namespace devmem
