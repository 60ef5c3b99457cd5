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

// --- SET and ACT requests ---
//
// They carry NLM_F_ACK: a SET has no reply of its own (FEATURES_SET may send
// one, RSS_CREATE_ACT always does), so the ACK is what says it was applied.
// Each writes only the attributes it was asked to change: strict policies
// reject attributes the running kernel does not know, and an unset field must
// keep its current value (net/ethtool/netlink.c ethnl_default_set_doit()).
// Every header nest below is the by-ifindex one (12 bytes); by name it holds
// ETHTOOL_A_HEADER_DEV_NAME as in the GETs.

// ETHTOOL_MSG_RINGS_SET (16), header split only:
//
//   nlmsghdr   len | type=family id | flags=REQUEST|ACK | seq | pid       16
//   genlmsghdr cmd=16 | version=1 | reserved=0                             4
//   nlattr     len=12 | type=NLA_F_NESTED|ETHTOOL_A_RINGS_HEADER (1)       4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1)                4
//              u32 ifindex                                                 4
//   [nlattr    len=5  | type=ETHTOOL_A_RINGS_TCP_DATA_SPLIT (11)           4
//              u8 value, 3 pad bytes                                       4]
//   [nlattr    len=8  | type=ETHTOOL_A_RINGS_HDS_THRESH (17)               4
//              u32 threshold                                               4]
//                                                      total 32, 40 or 48
GenlMsg BuildRingsSet(uint16_t family_id, const EthtoolDev& dev,
                      const RingsSet& rings);

// ETHTOOL_MSG_FEATURES_SET (12) changing "rx-ntuple-filter" alone. WANTED is
// a verbose bitset without NOMASK, so it is a (value, mask) pair in which
// only the listed bit is in the mask: no other feature changes
// (net/ethtool/bitset.c ethnl_update_bitset32_verbose()). The bit is named,
// not indexed: its index varies between kernels. Header FLAGS = 0: no
// COMPACT_BITSETS, so a FEATURES_SET_REPLY (sent when the result differs from
// the request) names its bits too.
//
//   nlmsghdr   len=80|76 | type=family id | flags=REQUEST|ACK | seq | pid  16
//   genlmsghdr cmd=12 | version=1 | reserved=0                             4
//   nlattr     len=20 | type=NLA_F_NESTED|ETHTOOL_A_FEATURES_HEADER (1)    4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1) | u32 ifindex  8
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_FLAGS (3) | u32 0            8
//   nlattr     len=40|36 | type=NLA_F_NESTED|ETHTOOL_A_FEATURES_WANTED (3) 4
//     nlattr   len=36|32 | type=NLA_F_NESTED|ETHTOOL_A_BITSET_BITS (3)     4
//       nlattr len=32|28 | type=NLA_F_NESTED|ETHTOOL_A_BITSET_BITS_BIT (1) 4
//         nlattr len=21 | type=ETHTOOL_A_BITSET_BIT_NAME (2)               4
//                "rx-ntuple-filter\0", 3 pad bytes                        20
//         [nlattr len=4 | type=ETHTOOL_A_BITSET_BIT_VALUE (3): enable]     4
//                                              total 80 (on) or 76 (off)
GenlMsg BuildFeaturesSetNtuple(uint16_t family_id, const EthtoolDev& dev,
                               bool enable);

// ETHTOOL_MSG_CHANNELS_SET (18): one u32 per count that is set, in this
// order (each optional):
//
//   nlmsghdr   len | type=family id | flags=REQUEST|ACK | seq | pid       16
//   genlmsghdr cmd=18 | version=1 | reserved=0                             4
//   nlattr     len=12 | type=NLA_F_NESTED|ETHTOOL_A_CHANNELS_HEADER (1)    4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1) | u32 ifindex  8
//   [nlattr    len=8  | type=ETHTOOL_A_CHANNELS_RX_COUNT (6) | u32         8]
//   [nlattr    len=8  | type=ETHTOOL_A_CHANNELS_TX_COUNT (7) | u32         8]
//   [nlattr    len=8  | type=ETHTOOL_A_CHANNELS_OTHER_COUNT (8) | u32      8]
//   [nlattr    len=8  | type=ETHTOOL_A_CHANNELS_COMBINED_COUNT (9) | u32   8]
//                                                  total 32 + 8 per count
GenlMsg BuildChannelsSet(uint16_t family_id, const EthtoolDev& dev,
                         const ChannelsSet& channels);

// --- RSS (KERNEL_API.md section 3, "RSS") ---
//
// INDIR is a binary attribute holding native-endian u32 queue indexes. A
// table of more than about 1000 entries does not fit GenlMsg::kMaxBytes; the
// message is then overflowed() and sockets refuse it. The kernel repeats a
// table whose length divides the device's, so pass one period instead.

// ETHTOOL_MSG_RSS_GET (38), a GET like the three above (no ACK), for
// `context` (0 = the main table; CONTEXT is sent only for a non-zero one):
//
//   nlmsghdr   len=32|40 | type=family id | flags=REQUEST | seq | pid     16
//   genlmsghdr cmd=38 | version=1 | reserved=0                             4
//   nlattr     len=12 | type=NLA_F_NESTED|ETHTOOL_A_RSS_HEADER (1)         4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1) | u32 ifindex  8
//   [nlattr    len=8  | type=ETHTOOL_A_RSS_CONTEXT (2) | u32 context      8]
GenlMsg BuildRssGet(uint16_t family_id, const EthtoolDev& dev,
                    uint32_t context);

// ETHTOOL_MSG_RSS_SET (48, 6.17+), the indirection table of `context`. An
// empty `indir` is sent as an empty INDIR attribute, which resets the main
// table to the driver's default spread (a non-zero context refuses that:
// "can't reset table for a context", net/ethtool/rss.c
// rss_set_prep_indir()).
//
//   nlmsghdr   len | type=family id | flags=REQUEST|ACK | seq | pid       16
//   genlmsghdr cmd=48 | version=1 | reserved=0                             4
//   nlattr     len=12 | type=NLA_F_NESTED|ETHTOOL_A_RSS_HEADER (1)         4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1) | u32 ifindex  8
//   [nlattr    len=8  | type=ETHTOOL_A_RSS_CONTEXT (2) | u32 context      8]
//   nlattr     len=4+4n | type=ETHTOOL_A_RSS_INDIR (4)                     4
//              u32 indir[n]                                               4n
GenlMsg BuildRssSet(uint16_t family_id, const EthtoolDev& dev, uint32_t context,
                    absl::Span<const uint32_t> indir);

// ETHTOOL_MSG_RSS_CREATE_ACT (49, 6.17+): a new context, id chosen by the
// kernel (no CONTEXT attribute), spreading over `indir`; INDIR is left out
// when `indir` is empty (the driver's default spread).
//
//   nlmsghdr   len | type=family id | flags=REQUEST|ACK | seq | pid       16
//   genlmsghdr cmd=49 | version=1 | reserved=0                             4
//   nlattr     len=12 | type=NLA_F_NESTED|ETHTOOL_A_RSS_HEADER (1)         4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1) | u32 ifindex  8
//   [nlattr    len=4+4n | type=ETHTOOL_A_RSS_INDIR (4) | u32 indir[n]  4+4n]
GenlMsg BuildRssCreateAct(uint16_t family_id, const EthtoolDev& dev,
                          absl::Span<const uint32_t> indir);

// ETHTOOL_MSG_RSS_DELETE_ACT (50, 6.17+):
//
//   nlmsghdr   len=40 | type=family id | flags=REQUEST|ACK | seq | pid    16
//   genlmsghdr cmd=50 | version=1 | reserved=0                             4
//   nlattr     len=12 | type=NLA_F_NESTED|ETHTOOL_A_RSS_HEADER (1)         4
//     nlattr   len=8  | type=ETHTOOL_A_HEADER_DEV_INDEX (1) | u32 ifindex  8
//   nlattr     len=8  | type=ETHTOOL_A_RSS_CONTEXT (2) | u32 context       8
GenlMsg BuildRssDeleteAct(uint16_t family_id, const EthtoolDev& dev,
                          uint32_t context);

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

// ETHTOOL_MSG_RSS_GET_REPLY (38). CONTEXT is absent for the main table (0);
// HFUNC and HKEY are absent when the driver reports none. INDIR must be a
// whole number of u32s.
absl::StatusOr<RssInfo> ParseRssReply(absl::Span<const uint8_t> msg);

// ETHTOOL_MSG_RSS_CREATE_ACT_REPLY (51): the new context's id (CONTEXT,
// required and non-zero).
absl::StatusOr<uint32_t> ParseRssCreateActReply(absl::Span<const uint8_t> msg);

}  // namespace devmem
