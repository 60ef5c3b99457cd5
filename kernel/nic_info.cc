#include "kernel/nic_info.h"

#include <cerrno>
#include <utility>

#include "kernel/errno_status.h"

namespace devmem {

Capability CapabilityFromStatus(std::string name, const absl::Status& status) {
  Capability cap;
  cap.name = std::move(name);
  if (status.ok()) {
    cap.support = Support::kSupported;
    return cap;
  }
  cap.error = StatusErrno(status);
  cap.reason = std::string(status.message());
  cap.support = (cap.error == EOPNOTSUPP || cap.error == ENOTSUP)
                    ? Support::kUnsupported
                    : Support::kUnknown;
  return cap;
}

}  // namespace devmem
