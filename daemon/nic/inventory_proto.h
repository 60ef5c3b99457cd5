#pragma once

#include "kernel/nic_info.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

// Converts the kernel layer's description of a NIC into the API message, and
// decides devmem_capable / devmem_missing from its capabilities.
devmem::v1::Nic NicToProto(const NicInfo& info);

// The parts of NicToProto other messages reuse (NicState, NicSettings).
// Fields absent in `c` stay unset.
void ChannelsToProto(const ChannelsInfo& c, devmem::v1::Channels* out);
void CapabilityToProto(const Capability& c, devmem::v1::Capability* out);

}  // namespace devmem
