#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace devmem {

// A fake sysfs PCI tree under $TEST_TMPDIR, shaped like the real one:
// devices/pciDDDD:BB/<root port>/.../<device> with vendor, device, class and
// numa_node files, and bus/pci/devices/<address> symlinks into it.
class FakePci {
 public:
  FakePci() {
    static int instance = 0;
    root_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/pci-", getpid(), "-",
                         ++instance);
    Mkdirs(root_ + "/bus/pci/devices");
    Mkdirs(root_ + "/bus/pci/drivers/nvidia");
    Mkdirs(root_ + "/bus/pci/drivers/mlx5_core");
  }
  const std::string& root() const { return root_; }

  // `chain`: the host bridge ("pci0000:10"), then PCI addresses down to the
  // device; every element gets its directory, the last its attributes.
  void Add(const std::vector<std::string>& chain, uint32_t cls, int numa,
           const std::string& driver = "") {
    const std::string rel = absl::StrJoin(chain, "/");
    const std::string dir = absl::StrCat(root_, "/devices/", rel);
    Mkdirs(dir);
    Write(dir + "/vendor", cls >> 8 == 0x0200 ? "0x15b3" : "0x10de");
    Write(dir + "/device", "0x2330");
    Write(dir + "/class", absl::StrCat("0x", absl::Hex(cls, absl::kZeroPad6)));
    Write(dir + "/numa_node", absl::StrCat(numa));
    if (!driver.empty()) {
      symlink(absl::StrCat(root_, "/bus/pci/drivers/", driver).c_str(),
              (dir + "/driver").c_str());
    }
    // Bridges on the way are PCI devices too (class 0x0604).
    for (size_t i = 1; i < chain.size(); ++i) {
      const std::string link =
          absl::StrCat(root_, "/bus/pci/devices/", chain[i]);
      const std::string target = absl::StrCat(
          "../../../devices/",
          absl::StrJoin(chain.begin(), chain.begin() + i + 1, "/"));
      symlink(target.c_str(), link.c_str());
      if (i + 1 < chain.size()) {
        Write(absl::StrCat(
                  root_, "/devices/",
                  absl::StrJoin(chain.begin(), chain.begin() + i + 1, "/"),
                  "/class"),
              "0x060400");
      }
    }
  }

 private:
  static void Mkdirs(const std::string& path) {
    for (size_t pos = 1; pos != std::string::npos;) {
      pos = path.find('/', pos + 1);
      mkdir(path.substr(0, pos).c_str(), 0755);
    }
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text << "\n";
  }
  std::string root_;
};

}  // namespace devmem
