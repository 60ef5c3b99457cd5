#include "kernel/ethtool_ioctl.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernel/errno_status.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

#if defined(__x86_64__)
// KERNEL_API.md section 3: the x86_64 layouts the kernel expects.
static_assert(sizeof(ethtool_rxnfc) == 192, "KERNEL_API.md section 3");
static_assert(offsetof(ethtool_rxnfc, fs) == 16, "KERNEL_API.md section 3");
static_assert(offsetof(ethtool_rxnfc, rule_cnt) == 184, "KERNEL_API.md");
static_assert(offsetof(ethtool_rxnfc, rss_context) == 184, "KERNEL_API.md");
static_assert(offsetof(ethtool_rxnfc, rule_locs) == 188, "KERNEL_API.md");
static_assert(sizeof(ethtool_rx_flow_spec) == 168, "KERNEL_API.md section 3");
static_assert(offsetof(ethtool_rx_flow_spec, h_u) == 4, "uapi ethtool.h");
static_assert(offsetof(ethtool_rx_flow_spec, m_u) == 76, "uapi ethtool.h");
static_assert(offsetof(ethtool_rx_flow_spec, ring_cookie) == 152,
              "KERNEL_API.md section 3");
static_assert(offsetof(ethtool_rx_flow_spec, location) == 160,
              "KERNEL_API.md section 3");
#endif
// The 24-byte GRSSH/SRSSH header; input_xfrm (6.8+) is the byte after hfunc,
// rsvd8[0] in older headers such as Debian 12's.
static_assert(sizeof(ethtool_rxfh) == 24, "KERNEL_API.md section 3");
static_assert(offsetof(ethtool_rxfh, hfunc) == 16, "uapi ethtool.h");
constexpr size_t kRxfhInputXfrmOffset = 17;
// ETH_RSS_HASH_NO_CHANGE is kernel-internal (include/linux/ethtool.h), not
// uapi: hfunc 0 means "keep the hash function".
constexpr uint8_t kRssHashNoChange = 0;
static_assert(offsetof(ethtool_rxfh_indir, ring_index) == 8, "uapi ethtool.h");

// Bounds on what a (possibly buggy) driver may ask us to allocate. Real
// tables are at most a few thousand entries and keys 52 bytes.
constexpr uint32_t kMaxIndirEntries = 1u << 16;
constexpr uint32_t kMaxKeyBytes = 1u << 12;
constexpr uint32_t kMaxRules = 1u << 16;

absl::Status CheckIfname(const std::string& ifname) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("interface name \"", ifname, "\" must have 1 to ",
                     IFNAMSIZ - 1, " characters"));
  }
  return absl::OkStatus();
}

// Parses `text` as an `af` address into `out` (4 or 16 bytes).
absl::Status ParseIp(int af, const std::string& text, const char* field,
                     void* out) {
  if (inet_pton(af, text.c_str(), out) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", text, "\" is not an ",
                     af == AF_INET ? "IPv4" : "IPv6", " address"));
  }
  return absl::OkStatus();
}

template <typename T>
bool AllOnes(const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  return std::all_of(p, p + sizeof(T), [](uint8_t b) { return b == 0xff; });
}

template <typename T>
bool AllZero(const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  return std::all_of(p, p + sizeof(T), [](uint8_t b) { return b == 0; });
}

// A field of a decoded spec is either matched (full mask) or a wildcard
// (zero mask); FlowRule cannot express anything in between.
absl::Status CheckMask(bool full, bool zero, const char* field) {
  if (full || zero) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " has a partial mask, which FlowRule cannot hold"));
}

}  // namespace

absl::StatusOr<ethtool_rx_flow_spec> EncodeFlowSpec(const FlowRule& rule) {
  ethtool_rx_flow_spec fs;
  std::memset(&fs, 0, sizeof(fs));
  const FlowTuple& m = rule.match;
  if (m.family == AF_INET) {
    fs.flow_type = TCP_V4_FLOW;
    ethtool_tcpip4_spec& h = fs.h_u.tcp_ip4_spec;
    ethtool_tcpip4_spec& mask = fs.m_u.tcp_ip4_spec;
    if (!m.src_ip.empty()) {
      absl::Status s = ParseIp(AF_INET, m.src_ip, "match.src_ip", &h.ip4src);
      if (!s.ok()) return s;
      mask.ip4src = 0xffffffff;
    }
    if (!m.dst_ip.empty()) {
      absl::Status s = ParseIp(AF_INET, m.dst_ip, "match.dst_ip", &h.ip4dst);
      if (!s.ok()) return s;
      mask.ip4dst = 0xffffffff;
    }
    if (m.src_port != 0) {
      h.psrc = htons(m.src_port);
      mask.psrc = 0xffff;
    }
    if (m.dst_port != 0) {
      h.pdst = htons(m.dst_port);
      mask.pdst = 0xffff;
    }
  } else if (m.family == AF_INET6) {
    fs.flow_type = TCP_V6_FLOW;
    ethtool_tcpip6_spec& h = fs.h_u.tcp_ip6_spec;
    ethtool_tcpip6_spec& mask = fs.m_u.tcp_ip6_spec;
    if (!m.src_ip.empty()) {
      absl::Status s = ParseIp(AF_INET6, m.src_ip, "match.src_ip", h.ip6src);
      if (!s.ok()) return s;
      std::memset(mask.ip6src, 0xff, sizeof(mask.ip6src));
    }
    if (!m.dst_ip.empty()) {
      absl::Status s = ParseIp(AF_INET6, m.dst_ip, "match.dst_ip", h.ip6dst);
      if (!s.ok()) return s;
      std::memset(mask.ip6dst, 0xff, sizeof(mask.ip6dst));
    }
    if (m.src_port != 0) {
      h.psrc = htons(m.src_port);
      mask.psrc = 0xffff;
    }
    if (m.dst_port != 0) {
      h.pdst = htons(m.dst_port);
      mask.pdst = 0xffff;
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("match.family ", m.family,
                     " is neither AF_INET (2) nor AF_INET6 (10)"));
  }
  if (rule.rss_context.has_value()) fs.flow_type |= FLOW_RSS;
  fs.ring_cookie = rule.queue;
  fs.location = rule.location;
  return fs;
}

absl::StatusOr<ethtool_rxnfc> EncodeRuleInsert(const FlowRule& rule) {
  absl::StatusOr<ethtool_rx_flow_spec> fs = EncodeFlowSpec(rule);
  if (!fs.ok()) return fs.status();
  ethtool_rxnfc nfc;
  std::memset(&nfc, 0, sizeof(nfc));
  nfc.cmd = ETHTOOL_SRXCLSRLINS;
  nfc.fs = *fs;
  // net/ethtool/ioctl.c ethtool_set_rxnfc(): with FLOW_RSS in fs.flow_type
  // the context comes from rss_context (a union with rule_cnt).
  if (rule.rss_context.has_value()) nfc.rss_context = *rule.rss_context;
  return nfc;
}

absl::StatusOr<FlowRule> DecodeFlowSpec(const ethtool_rx_flow_spec& fs,
                                        uint32_t rss_context) {
  FlowRule rule;
  const uint32_t type = fs.flow_type & ~FLOW_RSS;
  if (type != TCP_V4_FLOW && type != TCP_V6_FLOW) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "flow_type 0x%x is not TCP_V4_FLOW or TCP_V6_FLOW", fs.flow_type));
  }
  if (!AllZero(fs.h_ext) || !AllZero(fs.m_ext)) {
    return absl::InvalidArgumentError("rule uses extension fields");
  }
  if (fs.ring_cookie == RX_CLS_FLOW_DISC || (fs.ring_cookie >> 32) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring_cookie 0x%x is a drop or VF rule, not a queue", fs.ring_cookie));
  }
  char text[INET6_ADDRSTRLEN];
  FlowTuple& m = rule.match;
  if (type == TCP_V4_FLOW) {
    m.family = AF_INET;
    const ethtool_tcpip4_spec& h = fs.h_u.tcp_ip4_spec;
    const ethtool_tcpip4_spec& mask = fs.m_u.tcp_ip4_spec;
    for (absl::Status s :
         {CheckMask(AllOnes(mask.ip4src), mask.ip4src == 0, "src_ip"),
          CheckMask(AllOnes(mask.ip4dst), mask.ip4dst == 0, "dst_ip"),
          CheckMask(mask.psrc == 0xffff, mask.psrc == 0, "src_port"),
          CheckMask(mask.pdst == 0xffff, mask.pdst == 0, "dst_port"),
          CheckMask(false, mask.tos == 0, "tos")}) {
      if (!s.ok()) return s;
    }
    if (mask.ip4src != 0) {
      m.src_ip = inet_ntop(AF_INET, &h.ip4src, text, sizeof(text));
    }
    if (mask.ip4dst != 0) {
      m.dst_ip = inet_ntop(AF_INET, &h.ip4dst, text, sizeof(text));
    }
    if (mask.psrc != 0) m.src_port = ntohs(h.psrc);
    if (mask.pdst != 0) m.dst_port = ntohs(h.pdst);
  } else {
    m.family = AF_INET6;
    const ethtool_tcpip6_spec& h = fs.h_u.tcp_ip6_spec;
    const ethtool_tcpip6_spec& mask = fs.m_u.tcp_ip6_spec;
    for (absl::Status s :
         {CheckMask(AllOnes(mask.ip6src), AllZero(mask.ip6src), "src_ip"),
          CheckMask(AllOnes(mask.ip6dst), AllZero(mask.ip6dst), "dst_ip"),
          CheckMask(mask.psrc == 0xffff, mask.psrc == 0, "src_port"),
          CheckMask(mask.pdst == 0xffff, mask.pdst == 0, "dst_port"),
          CheckMask(false, mask.tclass == 0, "tclass")}) {
      if (!s.ok()) return s;
    }
    if (!AllZero(mask.ip6src)) {
      m.src_ip = inet_ntop(AF_INET6, h.ip6src, text, sizeof(text));
    }
    if (!AllZero(mask.ip6dst)) {
      m.dst_ip = inet_ntop(AF_INET6, h.ip6dst, text, sizeof(text));
    }
    if (mask.psrc != 0) m.src_port = ntohs(h.psrc);
    if (mask.pdst != 0) m.dst_port = ntohs(h.pdst);
  }
  if (fs.flow_type & FLOW_RSS) rule.rss_context = rss_context;
  rule.queue = static_cast<uint32_t>(fs.ring_cookie);
  rule.location = fs.location;
  return rule;
}

absl::StatusOr<std::unique_ptr<EthtoolIoctl>> EthtoolIoctl::Open() {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket(AF_INET, SOCK_DGRAM)");
  const int raw = fd.get_unowned();  // owned by the object built here
  return std::unique_ptr<EthtoolIoctl>(new EthtoolIoctl(
      std::move(fd),
      // NOLINTNEXTLINE(google-runtime-int): ioctl(2)'s request type.
      [raw](unsigned long request, struct ifreq* ifr) {
        return ::ioctl(raw, request, ifr);
      }));
}

EthtoolIoctl::EthtoolIoctl(IoctlFn ioctl) : ioctl_(std::move(ioctl)) {}

absl::Status EthtoolIoctl::Call(const std::string& ifname, const char* cmd_name,
                                void* data) {
  absl::Status s = CheckIfname(ifname);
  if (!s.ok()) return s;
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  std::memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  ifr.ifr_data = static_cast<char*>(data);
  errno = 0;
  if (ioctl_(SIOCETHTOOL, &ifr) != 0) {
    const int err = errno != 0 ? errno : EIO;
    return ErrnoStatus(err, absl::StrCat("ethtool ", cmd_name, " ", ifname));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> EthtoolIoctl::GetRxRings(const std::string& ifname) {
  ethtool_rxnfc nfc;
  std::memset(&nfc, 0, sizeof(nfc));
  nfc.cmd = ETHTOOL_GRXRINGS;
  absl::Status s = Call(ifname, "GRXRINGS", &nfc);
  if (!s.ok()) return s;
  return static_cast<uint32_t>(nfc.data);
}

absl::StatusOr<RuleTableInfo> EthtoolIoctl::GetRules(
    const std::string& ifname) {
  ethtool_rxnfc cnt;
  std::memset(&cnt, 0, sizeof(cnt));
  cnt.cmd = ETHTOOL_GRXCLSRLCNT;
  absl::Status s = Call(ifname, "GRXCLSRLCNT", &cnt);
  if (!s.ok()) return s;
  RuleTableInfo info;
  // include/uapi/linux/ethtool.h, struct ethtool_rxnfc: for GRXCLSRLCNT
  // .data is the table size, plus RX_CLS_LOC_SPECIAL if the driver can pick
  // a location itself.
  info.driver_picks_location = (cnt.data & RX_CLS_LOC_SPECIAL) != 0;
  info.table_size = static_cast<uint32_t>(cnt.data & ~RX_CLS_LOC_SPECIAL);
  const uint32_t count = cnt.rule_cnt;
  if (count == 0) return info;
  if (count > kMaxRules) {
    return absl::InternalError(absl::StrCat(
        "ethtool GRXCLSRLCNT ", ifname, ": implausible rule count ", count));
  }
  // net/ethtool/ioctl.c ethtool_get_rxnfc(): GRXCLSRLALL copies the struct
  // back, then rule_cnt u32 locations at offsetof(rule_locs).
  std::vector<uint8_t> buf(
      std::max(sizeof(ethtool_rxnfc),
               offsetof(ethtool_rxnfc, rule_locs) + sizeof(uint32_t) * count),
      0);
  ethtool_rxnfc all;
  std::memset(&all, 0, sizeof(all));
  all.cmd = ETHTOOL_GRXCLSRLALL;
  all.rule_cnt = count;
  std::memcpy(buf.data(), &all, sizeof(all));
  s = Call(ifname, "GRXCLSRLALL", buf.data());
  if (!s.ok()) return s;
  std::memcpy(&all, buf.data(), sizeof(all));
  const uint32_t got = std::min(all.rule_cnt, count);
  info.locations.resize(got);
  std::memcpy(info.locations.data(),
              buf.data() + offsetof(ethtool_rxnfc, rule_locs),
              sizeof(uint32_t) * got);
  return info;
}

absl::StatusOr<FlowRule> EthtoolIoctl::GetRule(const std::string& ifname,
                                               uint32_t location) {
  ethtool_rxnfc req;
  std::memset(&req, 0, sizeof(req));
  req.cmd = ETHTOOL_GRXCLSRULE;
  req.fs.location = location;
  absl::Status s = Call(ifname, "GRXCLSRULE", &req);
  if (!s.ok()) return s;
  absl::StatusOr<FlowRule> rule = DecodeFlowSpec(req.fs, req.rss_context);
  if (!rule.ok()) return rule.status();
  rule->location = location;
  return rule;
}

absl::StatusOr<uint32_t> EthtoolIoctl::InsertRule(const std::string& ifname,
                                                  const FlowRule& rule) {
  absl::Status s = CheckIfname(ifname);
  if (!s.ok()) return s;
  absl::StatusOr<ethtool_rxnfc> req = EncodeRuleInsert(rule);
  if (!req.ok()) return req.status();
  if (rule.location == kRxClsLocAny) {
    absl::StatusOr<RuleTableInfo> table = GetRules(ifname);
    if (!table.ok()) return table.status();
    if (!table->driver_picks_location) {
      // ethtool(8) rxclass.c rmgr_find_empty_slot(): the last slot is the
      // lowest priority, so search from the top of the table down.
      const std::set<uint32_t> used(table->locations.begin(),
                                    table->locations.end());
      bool found = false;
      for (uint32_t loc = table->table_size; loc-- > 0;) {
        if (used.count(loc) == 0) {
          req->fs.location = loc;
          found = true;
          break;
        }
      }
      if (!found) {
        const size_t in_table = static_cast<size_t>(std::count_if(
            used.begin(), used.end(),
            [&](uint32_t loc) { return loc < table->table_size; }));
        return absl::ResourceExhaustedError(
            absl::StrCat("ethtool SRXCLSRLINS ", ifname, ": rule table full (",
                         in_table, " of ", table->table_size, " used)"));
      }
    }
    // else: RX_CLS_LOC_ANY goes to the driver, which reports its choice.
  }
  s = Call(ifname, "SRXCLSRLINS", &*req);
  if (!s.ok()) return s;
  return req->fs.location;
}

absl::Status EthtoolIoctl::DeleteRule(const std::string& ifname,
                                      uint32_t location) {
  ethtool_rxnfc nfc;
  std::memset(&nfc, 0, sizeof(nfc));
  nfc.cmd = ETHTOOL_SRXCLSRLDEL;
  nfc.fs.location = location;
  return Call(ifname, "SRXCLSRLDEL", &nfc);
}

absl::StatusOr<RssInfo> EthtoolIoctl::GetRss(const std::string& ifname,
                                             uint32_t context) {
  ethtool_rxfh head;
  std::memset(&head, 0, sizeof(head));
  head.cmd = ETHTOOL_GRSSH;
  head.rss_context = context;
  // net/ethtool/ioctl.c ethtool_get_rxfh(): with indir_size = key_size = 0
  // the kernel only fills in the device's sizes (and hfunc).
  absl::Status s = Call(ifname, "GRSSH", &head);
  if (!s.ok()) {
    if (context == 0 && StatusErrno(s) == EOPNOTSUPP) {
      absl::StatusOr<RssInfo> old = GetRssIndirOnly(ifname);
      if (old.ok()) return old;
    }
    return s;
  }
  RssInfo info;
  info.context = context;
  info.hfunc = head.hfunc;
  const uint32_t indir_size = head.indir_size;
  const uint32_t key_size = head.key_size;
  if (indir_size == 0 && key_size == 0) return info;
  if (indir_size > kMaxIndirEntries || key_size > kMaxKeyBytes) {
    return absl::InternalError(
        absl::StrCat("ethtool GRSSH ", ifname, ": implausible sizes (indir ",
                     indir_size, ", key ", key_size, ")"));
  }
  std::vector<uint8_t> buf(
      sizeof(head) + sizeof(uint32_t) * indir_size + key_size, 0);
  std::memset(&head, 0, sizeof(head));
  head.cmd = ETHTOOL_GRSSH;
  head.rss_context = context;
  head.indir_size = indir_size;
  head.key_size = key_size;
  std::memcpy(buf.data(), &head, sizeof(head));
  s = Call(ifname, "GRSSH", buf.data());
  if (!s.ok()) return s;
  std::memcpy(&head, buf.data(), sizeof(head));
  info.hfunc = head.hfunc;
  info.indir.resize(indir_size);
  std::memcpy(info.indir.data(), buf.data() + sizeof(head),
              sizeof(uint32_t) * indir_size);
  const uint8_t* key =
      buf.data() + sizeof(head) + sizeof(uint32_t) * indir_size;
  info.hkey.assign(key, key + key_size);
  return info;
}

absl::StatusOr<RssInfo> EthtoolIoctl::GetRssIndirOnly(
    const std::string& ifname) {
  // net/ethtool/ioctl.c ethtool_get_rxfh_indir(): size 0 asks for the size.
  ethtool_rxfh_indir head;
  std::memset(&head, 0, sizeof(head));
  head.cmd = ETHTOOL_GRXFHINDIR;
  absl::Status s = Call(ifname, "GRXFHINDIR", &head);
  if (!s.ok()) return s;
  const uint32_t size = head.size;
  if (size > kMaxIndirEntries) {
    return absl::InternalError(absl::StrCat("ethtool GRXFHINDIR ", ifname,
                                            ": implausible table size ", size));
  }
  RssInfo info;
  if (size == 0) return info;
  std::vector<uint8_t> buf(sizeof(head) + sizeof(uint32_t) * size, 0);
  head.cmd = ETHTOOL_GRXFHINDIR;
  head.size = size;
  std::memcpy(buf.data(), &head, sizeof(head));
  s = Call(ifname, "GRXFHINDIR", buf.data());
  if (!s.ok()) return s;
  info.indir.resize(size);
  std::memcpy(info.indir.data(), buf.data() + sizeof(head),
              sizeof(uint32_t) * size);
  return info;
}

absl::Status EthtoolIoctl::SetRssIndir(const std::string& ifname,
                                       uint32_t context,
                                       absl::Span<const uint32_t> indir) {
  if (context != 0) {
    if (indir.empty()) {
      // indir_size 0 on a context would delete it (ethtool_set_rxfh()).
      return absl::InvalidArgumentError(
          absl::StrCat("ethtool SRSSH ", ifname,
                       ": an RSS context's table cannot be "
                       "reset; set a table or delete context ",
                       context));
    }
    return SetRssh(ifname, "SRSSH", context, indir, nullptr);
  }
  // struct ethtool_rxfh_indir {cmd, size, ring_index[size]}; size 0 resets
  // the table to the driver default (net/ethtool/ioctl.c
  // ethtool_set_rxfh_indir()).
  ethtool_rxfh_indir head;
  std::memset(&head, 0, sizeof(head));
  head.cmd = ETHTOOL_SRXFHINDIR;
  head.size = static_cast<uint32_t>(indir.size());
  std::vector<uint8_t> buf(sizeof(head) + sizeof(uint32_t) * indir.size(), 0);
  std::memcpy(buf.data(), &head, sizeof(head));
  if (!indir.empty()) {
    std::memcpy(buf.data() + sizeof(head), indir.data(),
                sizeof(uint32_t) * indir.size());
  }
  return Call(ifname, "SRXFHINDIR", buf.data());
}

absl::Status EthtoolIoctl::SetRssh(const std::string& ifname, const char* what,
                                   uint32_t context,
                                   absl::Span<const uint32_t> indir,
                                   uint32_t* context_out) {
  // struct ethtool_rxfh (24 bytes), then indir_size u32 entries, no key:
  //
  //   0 cmd = SRSSH | 4 rss_context | 8 indir_size | 12 key_size = 0
  //   16 hfunc = 0 (ETH_RSS_HASH_NO_CHANGE) | 17 input_xfrm = 0xff
  //   18 rsvd8[2] = 0 | 20 rsvd32 = 0 | 24 indir[indir_size]
  //
  // input_xfrm 0 would switch symmetric hashing off; RXH_XFRM_NO_CHANGE keeps
  // it (net/ethtool/ioctl.c ethtool_set_rxfh(), 6.8+).
  ethtool_rxfh head;
  std::memset(&head, 0, sizeof(head));
  head.cmd = ETHTOOL_SRSSH;
  head.rss_context = context;
  head.indir_size = static_cast<uint32_t>(indir.size());
  head.key_size = 0;
  head.hfunc = kRssHashNoChange;
  std::vector<uint8_t> buf(sizeof(head) + sizeof(uint32_t) * indir.size(), 0);
  std::memcpy(buf.data(), &head, sizeof(head));
  buf[kRxfhInputXfrmOffset] = RXH_XFRM_NO_CHANGE;
  if (!indir.empty()) {
    std::memcpy(buf.data() + sizeof(head), indir.data(),
                sizeof(uint32_t) * indir.size());
  }
  absl::Status s = Call(ifname, what, buf.data());
  if (!s.ok()) return s;
  if (context_out != nullptr) {
    std::memcpy(&head, buf.data(), sizeof(head));
    *context_out = head.rss_context;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> EthtoolIoctl::CreateRssContext(
    const std::string& ifname, absl::Span<const uint32_t> indir) {
  uint32_t id = ETH_RXFH_CONTEXT_ALLOC;
  absl::Status s = SetRssh(ifname, "SRSSH", ETH_RXFH_CONTEXT_ALLOC, indir, &id);
  if (!s.ok()) return s;
  if (id == 0 || id == ETH_RXFH_CONTEXT_ALLOC) {
    return absl::InternalError(absl::StrCat(
        "ethtool SRSSH ", ifname, ": the kernel returned no context id"));
  }
  return id;
}

absl::Status EthtoolIoctl::DeleteRssContext(const std::string& ifname,
                                            uint32_t context) {
  if (context == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ethtool SRSSH ", ifname,
                     ": context 0 is the main table and cannot be deleted"));
  }
  return SetRssh(ifname, "SRSSH", context, {}, nullptr);
}

}  // namespace devmem
