#include "kernel/pci_topology.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kernel/errno_status.h"
#include "kernel/sysfs_util.h"

namespace devmem {
namespace {

// "0x10de" or "0x030200" as a number; 0 if unreadable.
uint32_t ReadHex(const std::string& path) {
  std::string text;
  uint32_t v = 0;
  if (!ReadSmallFile(path, &text) ||
      !absl::SimpleHexAtoi(
          absl::StripPrefix(absl::StripAsciiWhitespace(text), "0x"), &v)) {
    return 0;
  }
  return v;
}

size_t CommonPrefix(const std::vector<std::string>& a,
                    const std::vector<std::string>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

const char* PciDistanceName(PciDistance d) {
  switch (d) {
    case PciDistance::kPix:
      return "PIX";
    case PciDistance::kPxb:
      return "PXB";
    case PciDistance::kPhb:
      return "PHB";
    case PciDistance::kNode:
      return "NODE";
    case PciDistance::kSys:
      return "SYS";
  }
  return "SYS";
}

bool IsAccelerator(uint32_t pci_class) {
  const uint32_t cls = pci_class >> 8;
  return cls == 0x0300 || cls == 0x0302 || cls == 0x1200;
}

PciDistance Distance(const PciDevice& a, const PciDevice& b) {
  if (a.path.empty() || b.path.empty() || a.path[0] != b.path[0]) {
    // Different host bridges: the NUMA nodes decide.
    if (a.numa_node != b.numa_node && a.numa_node >= 0 && b.numa_node >= 0) {
      return PciDistance::kSys;
    }
    return PciDistance::kNode;
  }
  // Below the host bridge: the bridges they share.
  const std::vector<std::string> da(a.path.begin() + 1, a.path.end());
  const std::vector<std::string> db(b.path.begin() + 1, b.path.end());
  const size_t common = CommonPrefix(da, db);
  if (common == 0) return PciDistance::kPhb;
  // Each side below the shared bridge: at most a switch's downstream port
  // and the device itself.
  if (da.size() - common <= 2 && db.size() - common <= 2) {
    return PciDistance::kPix;
  }
  return PciDistance::kPxb;
}

PciTopology::PciTopology(std::string sysfs_root)
    : root_(std::move(sysfs_root)) {}

absl::StatusOr<PciDevice> PciTopology::Device(absl::string_view address) const {
  // sysfs names devices in lowercase hex; anything else is a typo here.
  if (!IsPciAddress(address) ||
      std::any_of(address.begin(), address.end(), absl::ascii_isupper)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", absl::CHexEscape(address),
        "\" is not a PCI address (DDDD:BB:DD.F, lowercase hex, e.g. "
        "0000:3b:00.0)"));
  }
  const std::string link = absl::StrCat(root_, "/bus/pci/devices/", address);
  const std::string real = RealPath(link);
  if (real.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no PCI device ", address, " (", link,
                     " does not exist); `lspci -D` lists the addresses"));
  }
  const std::string devices = RealPath(root_ + "/devices");
  PciDevice d;
  d.address = std::string{address};
  d.vendor = static_cast<uint16_t>(ReadHex(real + "/vendor"));
  d.device = static_cast<uint16_t>(ReadHex(real + "/device"));
  d.pci_class = ReadHex(real + "/class");
  d.numa_node = ReadNumaNode(real);
  const std::string driver = RealPath(real + "/driver");
  if (!driver.empty()) d.driver = Basename(driver);
  absl::string_view rel = real;
  if (!devices.empty()) rel = absl::StripPrefix(rel, devices + "/");
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    if (absl::StartsWith(part, "pci") || IsPciAddress(part)) {
      d.path.emplace_back(part);
    }
  }
  return d;
}

absl::StatusOr<std::vector<PciDevice>> PciTopology::Accelerators() const {
  std::vector<PciDevice> out;
  const std::string dir = root_ + "/bus/pci/devices";
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (d == nullptr) {
    if (errno == ENOENT) return out;  // no PCI bus (some VMs, containers)
    return ErrnoStatus(errno, absl::StrCat("opendir ", dir));
  }
  while (struct dirent* e = ::readdir(d.get())) {
    if (!IsPciAddress(e->d_name)) continue;
    if (!IsAccelerator(ReadHex(absl::StrCat(dir, "/", e->d_name, "/class")))) {
      continue;
    }
    absl::StatusOr<PciDevice> dev = Device(e->d_name);
    if (dev.ok()) out.push_back(*std::move(dev));
  }
  std::sort(out.begin(), out.end(), [](const PciDevice& a, const PciDevice& b) {
    return a.address < b.address;
  });
  return out;
}

}  // namespace devmem
