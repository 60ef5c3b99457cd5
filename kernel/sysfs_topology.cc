#include "kernel/sysfs_topology.h"

#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"
#include "kernel/sysfs_util.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

std::string Dirname(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos || slash == 0
             ? std::string("/")
             : std::string(path.substr(0, slash));
}

}  // namespace

SysfsTopology::SysfsTopology(std::string sysfs_root)
    : root_(std::move(sysfs_root)) {}

absl::StatusOr<DeviceTopology> SysfsTopology::Lookup(
    absl::string_view ifname) const {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ || ifname == "." ||
      ifname == ".." || absl::StrContains(ifname, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", ifname, "\" is not an interface name"));
  }
  const std::string net_dir = absl::StrCat(root_, "/class/net/", ifname);
  struct stat st;
  if (stat(net_dir.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("sysfs ", net_dir));
  }
  DeviceTopology topo;
  std::string ifindex_text;
  uint32_t ifindex = 0;
  if (ReadSmallFile(absl::StrCat(net_dir, "/ifindex"), &ifindex_text) &&
      absl::SimpleAtoi(absl::StripAsciiWhitespace(ifindex_text), &ifindex)) {
    topo.ifindex = ifindex;
  }
  // Virtual devices (lo, veth, bridges) have no `device` link.
  const std::string device = RealPath(absl::StrCat(net_dir, "/device"));
  if (device.empty()) return topo;

  const std::string driver = RealPath(absl::StrCat(net_dir, "/device/driver"));
  if (!driver.empty()) topo.driver = Basename(driver);

  // The PCI function is the device itself or, for virtio-net and similar
  // bus-on-PCI devices (device -> .../0000:00:03.0/virtio2), an ancestor.
  // Only trust it under <root>/devices/pci*.
  const std::string pci_root = absl::StrCat(RealPath(root_), "/devices/pci");
  std::string pci_dir;
  if (absl::StartsWith(device, pci_root)) {
    for (std::string dir = device; dir.size() > pci_root.size();
         dir = Dirname(dir)) {
      if (IsPciAddress(Basename(dir))) {
        pci_dir = dir;
        break;
      }
    }
  }
  if (!pci_dir.empty()) topo.pci_address = Basename(pci_dir);

  topo.numa_node = ReadNumaNode(device);
  if (topo.numa_node < 0 && !pci_dir.empty() && pci_dir != device) {
    topo.numa_node = ReadNumaNode(pci_dir);
  }
  return topo;
}

}  // namespace devmem
