#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kernel/genl_msg.h"
#include "kernel/nic_info.h"

namespace devmem {

// ethtool generic-netlink messages (KERNEL_API.md section 3): request
// builders, kept apart from any socket, and reply parsers. The family id is
// dynamic, so builders take it; EthtoolNetlink resolves it once.

inline constexpr uint8_t kEthtoolGenlVersion = 1;

// The device a request names in its ETHTOOL_A_*_HEADER nest.
class EthtoolDev {
 public:
  static EthtoolDev ByIndex(uint32_t ifindex) {
    return EthtoolDev(ifindex, "");
  }
  static EthtoolDev ByName(absl::string_view ifname) {
    return EthtoolDev(0, ifname);
  }
  uint32_t ifindex() const { return ifindex_; }  // 0: by name
  const std::string& ifname() const { return ifname_; }

 private:
  EthtoolDev(uint32_t ifindex, absl::string_view ifname)
      : ifindex_(ifindex), ifname_(ifname) {}
  uint32_t ifindex_;
  std::string ifname_;
};

// GETs carry no NLM_F_ACK: the kernel answers with exactly one message, the
// reply or an NLMSG_ERROR, so a read costs one receive, not two.
//
// Layout shared by the three GET builders (by ifindex shown; by name the
// inner attribute is ETHTOOL_A_HEADER_DEV_NAME, a NUL-terminated string
// padded to 4 bytes):
//
//   nlmsghdr   len | type=family id | flags=REQUEST | seq=0 | pid=0       16
//   genlmsghdr cmd=<GET> | version=1 | reserved=0                          4
//   nlattr     len=12 | type=NLA_F_NESTED|ETHTOOL_A_*_HEADER (1)           4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1)                4
//              u32 ifindex                                                 4
//                                                              total      32

// ETHTOOL_MSG_CHANNELS_GET (17): the layout above, cmd = 17.
GenlMsg BuildChannelsGet(uint16_t family_id, const EthtoolDev& dev);

// ETHTOOL_MSG_RINGS_GET (15): the layout above, cmd = 15.
GenlMsg BuildRingsGet(uint16_t family_id, const EthtoolDev& dev);

// ETHTOOL_MSG_FEATURES_GET (11), asking for verbose bitsets (names), i.e.
// ETHTOOL_A_HEADER_FLAGS without ETHTOOL_FLAG_COMPACT_BITSETS:
//
//   nlmsghdr   len=40 | type=family id | flags=REQUEST | seq | pid         16
//   genlmsghdr cmd=11 | version=1 | reserved=0                             4
//   nlattr     len=20 | type=NLA_F_NESTED|ETHTOOL_A_FEATURES_HEADER (1)    4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1)                4
//              u32 ifindex                                                 4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_FLAGS (3)                    4
//              u32 0 (COMPACT_BITSETS off: names come back)                4
//                                                              total      40
GenlMsg BuildFeaturesGet(uint16_t family_id, const EthtoolDev& dev);

// Reply parsers. `msg` is one whole netlink message (nlmsghdr first); any
// alignment is fine. INVALID_ARGUMENT if it is truncated, is not the expected
// reply command, or an attribute has the wrong size. Unknown attributes are
// skipped (newer kernels add them).

// ETHTOOL_MSG_CHANNELS_GET_REPLY (18).
absl::StatusOr<ChannelsInfo> ParseChannelsReply(absl::Span<const uint8_t> msg);

// ETHTOOL_MSG_RINGS_GET_REPLY (16). TCP_DATA_SPLIT absent means UNKNOWN;
// HDS_THRESH / HDS_THRESH_MAX are set only when present.
absl::StatusOr<RingsInfo> ParseRingsReply(absl::Span<const uint8_t> msg);

// ETHTOOL_MSG_FEATURES_GET_REPLY (11). Finds "rx-ntuple-filter" by name in
// the HW and ACTIVE bitsets; a compact bitset (no names) is an error.
absl::StatusOr<FeaturesInfo> ParseFeaturesReply(absl::Span<const uint8_t> msg);

}  // namespace devmem
