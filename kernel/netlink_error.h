#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace devmem {

// What the kernel said in an NLMSG_ERROR (error or ACK) or NLMSG_DONE message,
// including the extended-ACK TLVs a socket with NETLINK_EXT_ACK receives.
struct NetlinkAck {
  int error = 0;                       // positive errno, 0 for a plain ACK
  std::string message;                 // NLMSGERR_ATTR_MSG, "" if none
  std::optional<uint32_t> bad_offset;  // NLMSGERR_ATTR_OFFS
  std::optional<uint32_t> missing_attr_type;  // NLMSGERR_ATTR_MISS_TYPE
};

// Parses one NLMSG_ERROR or NLMSG_DONE message at the start of `bytes` (which
// may hold more after it). INVALID_ARGUMENT if it is truncated or of another
// type. A missing-attribute TLV with no text gets a synthesized message.
absl::StatusOr<NetlinkAck> ParseNetlinkAck(absl::Span<const uint8_t> bytes);

// ErrnoStatus(ack.error, what, ack.message). `ack.error` must be non-zero.
absl::Status NetlinkAckStatus(const NetlinkAck& ack, absl::string_view what);

}  // namespace devmem
