#pragma once

#include <net/if.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernel/nic_inventory.h"

namespace devmem {

// In-memory inventory for daemon unit tests. Interface indexes are looked up
// for real (if_nametoindex) so sockets can be bound to the listed names.
class FakeNicInventory : public NicInventory {
 public:
  explicit FakeNicInventory(std::vector<NicInfo> nics)
      : nics_(std::move(nics)) {}

  absl::StatusOr<std::vector<NicInfo>> List() override { return nics_; }
  absl::StatusOr<NicInfo> Get(absl::string_view name) override {
    for (const NicInfo& n : nics_) {
      if (n.link.name == name) return n;
    }
    return NotFound(name);
  }
  absl::StatusOr<uint32_t> IfIndex(absl::string_view name) override {
    for (const NicInfo& n : nics_) {
      if (n.link.name == name) return n.link.ifindex;
    }
    return NotFound(name);
  }
  std::string BackendName() const override { return "fake"; }

 private:
  absl::Status NotFound(absl::string_view name) const {
    std::vector<std::string> names;
    for (const NicInfo& n : nics_) names.push_back(n.link.name);
    return absl::NotFoundError(
        absl::StrCat("no NIC named \"", name,
                     "\"; NICs on this host: ", absl::StrJoin(names, ", ")));
  }
  std::vector<NicInfo> nics_;
};

// A FakeNicInventory holding only the loopback device.
inline std::vector<NicInfo> LoopbackOnly() {
  NicInfo lo;
  lo.link.name = "lo";
  lo.link.ifindex = ::if_nametoindex("lo");
  lo.link.admin_up = true;
  lo.link.oper_state = "unknown";
  Capability c;
  c.name = "rings";
  c.support = Support::kUnsupported;
  c.error = 95;
  c.reason = "Operation not supported";
  lo.capabilities.push_back(c);
  return {lo};
}

}  // namespace devmem
