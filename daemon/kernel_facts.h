#pragma once

#include <cstdint>
#include <string>

#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

// devmemd's version string.
inline constexpr char kDevmemdVersion[] = "0.1.0";

// Name of a netdev genl command (KERNEL_API.md section 1), or "op-<n>".
std::string NetdevOpName(uint32_t cmd);

// Start-up facts for GetStatus: version, `uname -r`, and which generic-netlink
// families ("netdev", "ethtool") and netdev commands this kernel has.
devmem::v1::GetStatusResponse ProbeKernelFacts();

}  // namespace devmem
