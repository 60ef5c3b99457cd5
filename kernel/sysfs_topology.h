#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace devmem {

// Where a NIC sits in the machine, from /sys/class/net/<if>/device.
struct DeviceTopology {
  std::string driver;       // basename of device/driver, "" if none
  std::string pci_address;  // "0000:3b:00.0", "" if not on PCI
  int numa_node = -1;       // -1 if unknown or not NUMA
  // <root>/class/net/<if>/ifindex, 0 if unreadable. /sys/class/net shows the
  // netns of whoever mounted sysfs (net/core/net-sysfs.c net_namespace()),
  // so callers in another namespace compare this with the link's ifindex.
  uint32_t ifindex = 0;
};

// Reads DeviceTopology from a sysfs tree. The root is a parameter so tests
// can point it at a fake tree; production uses "/sys". Stateless and
// thread-safe.
class SysfsTopology {
 public:
  explicit SysfsTopology(std::string sysfs_root = "/sys");

  // NOT_FOUND if <root>/class/net/<ifname> does not exist; INVALID_ARGUMENT
  // for a name that could escape the directory. A virtual device (no
  // `device` link, e.g. lo or veth) is OK with empty fields and numa -1.
  absl::StatusOr<DeviceTopology> Lookup(absl::string_view ifname) const;

 private:
  std::string root_;
};

}  // namespace devmem
