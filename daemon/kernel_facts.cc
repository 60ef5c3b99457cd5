#include "daemon/kernel_facts.h"

#include <sys/utsname.h>

#include "absl/strings/str_cat.h"
#include "kernel/genl_family.h"

namespace devmem {

std::string NetdevOpName(uint32_t cmd) {
  // NETDEV_CMD_* values from include/uapi/linux/netdev.h.
  switch (cmd) {
    case 1:
      return "dev-get";
    case 2:
      return "dev-add-ntf";
    case 3:
      return "dev-del-ntf";
    case 4:
      return "dev-change-ntf";
    case 5:
      return "page-pool-get";
    case 6:
      return "page-pool-add-ntf";
    case 7:
      return "page-pool-del-ntf";
    case 8:
      return "page-pool-change-ntf";
    case 9:
      return "page-pool-stats-get";
    case 10:
      return "queue-get";
    case 11:
      return "napi-get";
    case 12:
      return "qstats-get";
    case 13:
      return "bind-rx";
    case 14:
      return "napi-set";
    case 15:
      return "bind-tx";
    case 16:
      return "queue-create";
    default:
      return absl::StrCat("op-", cmd);
  }
}

devmem::v1::GetStatusResponse ProbeKernelFacts() {
  devmem::v1::GetStatusResponse out;
  out.set_version(kDevmemdVersion);
  struct utsname u;
  if (::uname(&u) == 0) out.set_kernel_release(u.release);
  auto netdev = ResolveGenlFamily("netdev");
  out.set_netdev_family(netdev.ok());
  if (netdev.ok()) {
    for (const GenlOp& op : netdev->ops) {
      out.add_netdev_ops(NetdevOpName(op.id));
    }
  }
  out.set_ethtool_family(ResolveGenlFamily("ethtool").ok());
  return out;
}

}  // namespace devmem
