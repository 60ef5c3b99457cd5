#pragma once

#include <linux/ethtool.h>
#include <net/if.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernel/nic_info.h"
#include "kernel/unique_fd.h"

namespace devmem {

// The SIOCETHTOOL (0x8946) commands that ethtool netlink lacks on 6.12-6.18:
// ntuple rules (ethtool -n/-N) and RSS tables and contexts (ethtool -x/-X).
// KERNEL_API.md section 3, "ioctl fallback".

// What ETHTOOL_GRXCLSRLCNT + ETHTOOL_GRXCLSRLALL report.
struct RuleTableInfo {
  std::vector<uint32_t> locations;     // every installed rule, by anyone
  uint32_t table_size = 0;             // .data without RX_CLS_LOC_SPECIAL
  bool driver_picks_location = false;  // RX_CLS_LOC_SPECIAL was in .data
};

// Pure encoders (no ioctl), exposed for byte-for-byte tests.
//
// struct ethtool_rx_flow_spec for a TCP rule (x86_64, 168 bytes):
//
//   0    flow_type   TCP_V4_FLOW 0x01 | TCP_V6_FLOW 0x05, | FLOW_RSS 0x20000000
//   4    h_u         v4: ip4src@4 ip4dst@8 psrc@12 pdst@14 tos@16
//                    v6: ip6src@4 ip6dst@20 psrc@36 pdst@38 tclass@40
//   56   h_ext       0
//   76   m_u         same layout as h_u, at +72: all-ones where matched
//   128  m_ext       0
//   152  ring_cookie queue (low 32 bits; the offset in the context's table
//                    for FLOW_RSS rules)
//   160  location    rule.location
//
// Addresses and ports are in network byte order. In the ioctl ABI a set mask
// bit means "compare this bit" (include/uapi/linux/ethtool.h, struct
// ethtool_rx_flow_spec: "m_u: Masks for flow field bits to be matched";
// ethtool(8) inverts its command-line masks before the call), so a wildcard
// field has value 0 and mask 0. INVALID_ARGUMENT naming the field for an
// unknown family or an address that does not parse in it.
absl::StatusOr<ethtool_rx_flow_spec> EncodeFlowSpec(const FlowRule& rule);

// The whole ETHTOOL_SRXCLSRLINS request (struct ethtool_rxnfc, 192 bytes):
//
//   0    cmd          ETHTOOL_SRXCLSRLINS 0x32
//   4    flow_type    0 (the rule's type lives in fs.flow_type)
//   8    data         0
//   16   fs           EncodeFlowSpec(rule), 168 bytes
//   184  rss_context  *rule.rss_context for FLOW_RSS rules, else 0
//   188  (rule_locs[], unused; padding to 192)
absl::StatusOr<ethtool_rxnfc> EncodeRuleInsert(const FlowRule& rule);

// The inverse of EncodeFlowSpec for TCP_V4_FLOW/TCP_V6_FLOW specs (e.g. from
// ETHTOOL_GRXCLSRULE). `rss_context` is ethtool_rxnfc.rss_context, used only
// when fs.flow_type has FLOW_RSS. INVALID_ARGUMENT for other flow types,
// extension flags or partial masks, which FlowRule cannot express.
absl::StatusOr<FlowRule> DecodeFlowSpec(const ethtool_rx_flow_spec& fs,
                                        uint32_t rss_context);

// SIOCETHTOOL on one AF_INET datagram socket in the network namespace of the
// thread that called Open(); interfaces are named as in that namespace.
// Errors keep the errno: ErrnoStatus(errno, "ethtool <CMD> <ifname>"), so
// StatusErrno() == EOPNOTSUPP means the driver lacks the operation.
// Thread-safe (each call is one or a few independent ioctls; concurrent
// rule inserts with a free-slot search may race for a slot, and the loser
// gets the driver's error, normally EEXIST or EINVAL).
class EthtoolIoctl {
 public:
  // The system call seam: ioctl(fd, request, ifr), returning -1 with errno
  // set on failure. `ifr->ifr_data` points at the command struct.
  // NOLINTNEXTLINE(google-runtime-int): ioctl(2)'s request type.
  using IoctlFn = std::function<int(unsigned long request, struct ifreq* ifr)>;

  static absl::StatusOr<std::unique_ptr<EthtoolIoctl>> Open();

  // Runs every command through `ioctl` instead of a socket (tests feed
  // replies and inspect the request bytes this way).
  explicit EthtoolIoctl(IoctlFn ioctl);

  EthtoolIoctl(const EthtoolIoctl&) = delete;
  EthtoolIoctl& operator=(const EthtoolIoctl&) = delete;

  // ETHTOOL_GRXRINGS (0x2d): the RX ring count, in .data.
  absl::StatusOr<uint32_t> GetRxRings(const std::string& ifname);

  // ETHTOOL_GRXCLSRLCNT (0x2e), then ETHTOOL_GRXCLSRLALL (0x30) if any rule
  // is installed.
  absl::StatusOr<RuleTableInfo> GetRules(const std::string& ifname);

  // ETHTOOL_GRXCLSRULE (0x2f): the rule at `location`, decoded with
  // DecodeFlowSpec (its location filled in). ENOENT if none is there.
  absl::StatusOr<FlowRule> GetRule(const std::string& ifname,
                                   uint32_t location);

  // ETHTOOL_SRXCLSRLINS (0x32); returns the location the kernel reports in
  // fs.location. With rule.location == kRxClsLocAny the driver picks the slot
  // (RX_CLS_LOC_ANY) if it says it can; otherwise the highest free slot is
  // used, as ethtool(8) does (rxclass.c rmgr_find_empty_slot()):
  // RESOURCE_EXHAUSTED "rule table full (N of N used)" if there is none.
  absl::StatusOr<uint32_t> InsertRule(const std::string& ifname,
                                      const FlowRule& rule);

  // ETHTOOL_SRXCLSRLDEL (0x31).
  absl::Status DeleteRule(const std::string& ifname, uint32_t location);

  // ETHTOOL_GRSSH (0x46): a size query, then the read. For context 0 a
  // driver without GRSSH is asked with ETHTOOL_GRXFHINDIR (0x38) instead
  // (indirection table only); if that fails too, the GRSSH error is returned.
  absl::StatusOr<RssInfo> GetRss(const std::string& ifname, uint32_t context);

  // Context 0: ETHTOOL_SRXFHINDIR (0x39); an empty `indir` resets the table
  // to the driver's default spread. Other contexts: ETHTOOL_SRSSH (0x47)
  // keeping the key, hash function and input transform. A non-empty `indir`
  // must have exactly the device's table size (GetRss().indir.size());
  // the kernel answers EINVAL otherwise.
  absl::Status SetRssIndir(const std::string& ifname, uint32_t context,
                           absl::Span<const uint32_t> indir);

  // ETHTOOL_SRSSH with rss_context = ETH_RXFH_CONTEXT_ALLOC; returns the id
  // the kernel writes back. An empty `indir` gives the default spread.
  absl::StatusOr<uint32_t> CreateRssContext(const std::string& ifname,
                                            absl::Span<const uint32_t> indir);

  // ETHTOOL_SRSSH with indir_size 0 on `context` (> 0; INVALID_ARGUMENT for
  // 0, which would reset the main table instead).
  absl::Status DeleteRssContext(const std::string& ifname, uint32_t context);

 private:
  EthtoolIoctl(UniqueFd fd, IoctlFn ioctl)
      : fd_(std::move(fd)), ioctl_(std::move(ioctl)) {}

  // Runs `cmd_name` on `ifname` with `data` as the command struct.
  absl::Status Call(const std::string& ifname, const char* cmd_name,
                    void* data);
  absl::StatusOr<RssInfo> GetRssIndirOnly(const std::string& ifname);
  absl::Status SetRssh(const std::string& ifname, const char* what,
                       uint32_t context, absl::Span<const uint32_t> indir,
                       uint32_t* context_out);

  UniqueFd fd_;  // the socket ioctl_ uses; invalid with an injected seam
  IoctlFn ioctl_;
};

}  // namespace devmem
