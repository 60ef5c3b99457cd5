#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace devmem {

// Plain descriptions of a NIC as the kernel reports it. No proto types here:
// the daemon converts these to devmem.v1 messages.

enum class Support { kUnknown, kSupported, kUnsupported };

// Outcome of probing one capability. `error` is the positive errno (0 if none),
// `reason` is strerror text plus the kernel's extack message when there was
// one.
struct Capability {
  std::string name;  // "channels", "rings", "features", "ntuple", ...
  Support support = Support::kUnknown;
  int error = 0;
  std::string reason;
};

// Builds a Capability from the status of the GET that probed it:
// OK -> supported; EOPNOTSUPP -> unsupported; anything else -> unknown.
Capability CapabilityFromStatus(std::string name, const absl::Status& status);

// ETHTOOL_MSG_CHANNELS_GET reply (ETHTOOL_A_CHANNELS_*). Absent = not sent.
struct ChannelsInfo {
  std::optional<uint32_t> rx_max, tx_max, other_max, combined_max;
  std::optional<uint32_t> rx_count, tx_count, other_count, combined_count;
};

// ETHTOOL_A_RINGS_TCP_DATA_SPLIT values (KERNEL_API.md section 3).
enum class TcpDataSplit : uint8_t { kUnknown = 0, kDisabled = 1, kEnabled = 2 };

// ETHTOOL_MSG_RINGS_GET reply (ETHTOOL_A_RINGS_*). Absent = not sent.
struct RingsInfo {
  std::optional<uint32_t> rx_max, rx_mini_max, rx_jumbo_max, tx_max;
  std::optional<uint32_t> rx, rx_mini, rx_jumbo, tx, rx_buf_len;
  // The kernel omits the attribute when its value is 0 (UNKNOWN).
  TcpDataSplit tcp_data_split = TcpDataSplit::kUnknown;
  // Present only if the driver advertises HDS-threshold support (6.14+).
  std::optional<uint32_t> hds_thresh, hds_thresh_max;
};

// The subset of ETHTOOL_MSG_FEATURES_GET devmem needs; features found by name.
struct FeaturesInfo {
  bool ntuple_hw = false;      // "rx-ntuple-filter" in HW (changeable) set
  bool ntuple_active = false;  // "rx-ntuple-filter" in ACTIVE set
  uint32_t feature_count = 0;  // named bits seen in the HW bitset
};

// netdev QUEUE_GET entry (NETDEV_A_QUEUE_*).
struct QueueInfo {
  enum class Type : uint32_t { kRx = 0, kTx = 1 };
  uint32_t id = 0;
  Type type = Type::kRx;
  std::optional<uint32_t> napi_id;
  std::optional<uint32_t> dmabuf;
  bool io_uring = false;
  bool xsk = false;
};

// rtnetlink link + sysfs facts.
struct LinkInfo {
  std::string name;
  uint32_t ifindex = 0;
  std::string kind;  // IFLA_INFO_KIND, "" for physical devices
  std::string mac;   // "aa:bb:..", "" if none
  uint32_t mtu = 0;
  bool admin_up = false;
  std::string oper_state;   // "up", "down", "unknown", "lowerlayerdown", ...
  std::string driver;       // sysfs device/driver basename, "" if none
  std::string pci_address;  // sysfs, "" if not a PCI device
  int numa_node = -1;       // sysfs, -1 if unknown
};

// Everything the inventory reports about one NIC.
struct NicInfo {
  LinkInfo link;
  std::optional<ChannelsInfo> channels;
  std::optional<RingsInfo> rings;
  std::optional<FeaturesInfo> features;
  std::vector<QueueInfo> queues;
  // One per probed capability: "channels", "rings", "features", "queues",
  // "ntuple", "tcp_data_split", "hds_thresh".
  std::vector<Capability> capabilities;
};

// --- Requests and state for NIC changes (KERNEL_API.md section 3) ---

// ETHTOOL_MSG_CHANNELS_SET: only the fields that are set are sent.
struct ChannelsSet {
  std::optional<uint32_t> rx_count, tx_count, other_count, combined_count;
};

// ETHTOOL_MSG_RINGS_SET for header split: only the fields that are set are
// sent. hds_thresh must be left unset unless RINGS_GET showed HDS_THRESH
// (strict policies reject attributes the running kernel does not know).
struct RingsSet {
  std::optional<TcpDataSplit> tcp_data_split;
  std::optional<uint32_t> hds_thresh;
};

// One RSS context as RSS_GET (or ETHTOOL_GRSSH) reports it. Context 0 is the
// device's main table.
struct RssInfo {
  uint32_t context = 0;
  uint32_t hfunc = 0;           // ETH_RSS_HASH_* bits, 0 if not reported
  std::vector<uint32_t> indir;  // one queue index per table entry
  std::vector<uint8_t> hkey;    // hash key, empty if not reported
};

// The match part of an ntuple rule for TCP over IPv4 or IPv6, as seen by the
// receiver: src is the remote peer, dst is the local socket. An empty ip or a
// zero port is a wildcard (not matched), so a 3-tuple is dst_ip + dst_port.
struct FlowTuple {
  int family = 0;                       // AF_INET or AF_INET6
  std::string src_ip, dst_ip;           // numeric; "" = any
  uint16_t src_port = 0, dst_port = 0;  // 0 = any

  bool IsFiveTuple() const { return !src_ip.empty() && src_port != 0; }
  friend bool operator==(const FlowTuple& a, const FlowTuple& b) {
    return a.family == b.family && a.src_ip == b.src_ip &&
           a.dst_ip == b.dst_ip && a.src_port == b.src_port &&
           a.dst_port == b.dst_port;
  }
  friend bool operator!=(const FlowTuple& a, const FlowTuple& b) {
    return !(a == b);
  }
};

// RX_CLS_LOC_ANY: the driver picks the rule's slot (KERNEL_API.md section 3).
inline constexpr uint32_t kRxClsLocAny = 0xffffffff;

// An ntuple (RX network flow classification) rule: steer `match` to one RX
// queue, or to an RSS context (FLOW_RSS; the queue is then an offset into the
// context's table, normally 0).
struct FlowRule {
  FlowTuple match;
  uint32_t queue = 0;
  std::optional<uint32_t> rss_context;
  // Where the rule goes; kRxClsLocAny lets the driver (or the search for a
  // free slot) choose. Insert returns the slot actually used.
  uint32_t location = kRxClsLocAny;
};

}  // namespace devmem
