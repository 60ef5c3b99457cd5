#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernel/libnl_socket.h"

namespace devmem {

// One operation a generic-netlink family registered (CTRL_ATTR_OPS).
struct GenlOp {
  uint32_t id = 0;     // the command, e.g. NETDEV_CMD_BIND_RX (13)
  uint32_t flags = 0;  // GENL_ADMIN_PERM, GENL_CMD_CAP_DO, ...
};

// What CTRL_CMD_GETFAMILY says about a family.
struct GenlFamily {
  std::string name;
  uint16_t id = 0;
  uint32_t version = 0;
  uint32_t hdrsize = 0;
  uint32_t maxattr = 0;
  std::vector<GenlOp> ops;
  std::map<std::string, uint32_t> mcast_groups;  // name -> group id

  // Whether the running kernel registered command `cmd` (runtime feature
  // detection, as ethtool(8) does).
  bool HasOp(uint32_t cmd) const;
};

// Resolves `name` with CTRL_CMD_GETFAMILY on `sock`. NOT_FOUND (errno ENOENT)
// if the kernel has no such family; other errors carry errno and extack.
absl::StatusOr<GenlFamily> ResolveGenlFamily(LibnlGenlSocket& sock,
                                             absl::string_view name);

// Same, on a socket opened for this one call (in the caller's netns).
absl::StatusOr<GenlFamily> ResolveGenlFamily(absl::string_view name);

// Parses one CTRL_CMD_NEWFAMILY message (nlmsghdr first).
absl::StatusOr<GenlFamily> ParseGenlFamilyReply(absl::Span<const uint8_t> msg);

}  // namespace devmem
