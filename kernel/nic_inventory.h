#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernel/nic_info.h"

namespace devmem {

// Reads the host's NICs. Implementations: KernelNicInventory (netlink + sysfs),
// and test fakes. Thread-safe: calls may come from any gRPC thread
// concurrently. Errors: List() fails only if links cannot be enumerated at all;
// per-NIC probe failures are reported inside NicInfo::capabilities, never as a
// failed call.
class NicInventory {
 public:
  virtual ~NicInventory() = default;

  // All links except loopback-less filtering: every link the kernel lists.
  virtual absl::StatusOr<std::vector<NicInfo>> List() = 0;

  // One NIC by name; NOT_FOUND naming the NICs that exist if there is none.
  virtual absl::StatusOr<NicInfo> Get(absl::string_view name) = 0;

  // The interface index of a NIC; NOT_FOUND (naming the NICs that exist) if
  // absent. Cheap: used on every socket request.
  virtual absl::StatusOr<uint32_t> IfIndex(absl::string_view name) = 0;

  // Short backend name shown to users ("kernel").
  virtual std::string BackendName() const = 0;
};

}  // namespace devmem
