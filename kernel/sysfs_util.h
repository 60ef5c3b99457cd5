#pragma once
// Small sysfs readers shared by SysfsTopology and PciTopology: canonical
// paths, short attributes, NUMA nodes, PCI addresses. Stateless.

#include <string>

#include "absl/strings/string_view.h"

namespace devmem {

// The last path component.
std::string Basename(absl::string_view path);
// realpath(3), or "" if `path` does not resolve.
std::string RealPath(const std::string& path);
// Reads a small sysfs attribute (under 64 bytes); false if it cannot be read.
bool ReadSmallFile(const std::string& path, std::string* out);
// <device_dir>/numa_node, or -1 if unknown.
int ReadNumaNode(const std::string& device_dir);
// "DDDD:BB:DD.F" (domain:bus:device.function, hex), as in
// /sys/bus/pci/devices (drivers/pci/probe.c pci_setup_device()).
bool IsPciAddress(absl::string_view s);

}  // namespace devmem
