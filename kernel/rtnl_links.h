#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernel/nic_info.h"

namespace devmem {

// Lists links with libnl-route-3 (rtnl_link_alloc_cache: one RTM_GETLINK dump)
// on a socket opened for the call, so it sees the network namespace the
// calling thread is in. Fills name, ifindex, kind, mac, mtu, admin_up and
// oper_state; sysfs fields are left empty. Sorted by ifindex. Thread-safe.
absl::StatusOr<std::vector<LinkInfo>> ListLinks();

// One link by name (RTM_GETLINK do). NOT_FOUND if there is none.
absl::StatusOr<LinkInfo> GetLink(absl::string_view name);

}  // namespace devmem
