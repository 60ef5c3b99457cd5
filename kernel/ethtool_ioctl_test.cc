#include "kernel/ethtool_ioctl.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<uint8_t> BytesOf(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n);
}

// Writes `v` into `bytes` at `offset`: expected images are all zeros except
// what each test spells out, so every other byte is checked to be 0.
void Put(std::vector<uint8_t>& bytes, size_t offset,
         std::initializer_list<uint8_t> v) {
  ASSERT_LE(offset + v.size(), bytes.size());
  std::copy(v.begin(), v.end(), bytes.begin() + offset);
}

uint32_t U32At(const std::vector<uint8_t>& bytes, size_t offset) {
  uint32_t v = 0;
  std::memcpy(&v, bytes.data() + offset, sizeof(v));
  return v;
}

// Offsets inside ethtool_rx_flow_spec (KERNEL_API.md section 3, x86_64).
constexpr size_t kHu = 4;
constexpr size_t kMu = 76;
constexpr size_t kRingCookie = 152;
constexpr size_t kLocation = 160;
// ethtool_rxnfc.fs and .rss_context/.rule_cnt.
constexpr size_t kFs = 16;
constexpr size_t kRssContext = 184;

FlowRule V4FiveTuple() {
  FlowRule rule;
  rule.match.family = AF_INET;
  rule.match.src_ip = "192.0.2.1";
  rule.match.dst_ip = "198.51.100.7";
  rule.match.src_port = 40000;  // 0x9c40
  rule.match.dst_port = 5201;   // 0x1451
  rule.queue = 3;
  rule.location = 7;
  return rule;
}

FlowRule V4FiveTupleAny() {
  FlowRule rule = V4FiveTuple();
  rule.location = kRxClsLocAny;
  return rule;
}

TEST(EncodeFlowSpecTest, V4FiveTupleBytes) {
  absl::StatusOr<ethtool_rx_flow_spec> fs = EncodeFlowSpec(V4FiveTuple());
  ASSERT_TRUE(fs.ok()) << fs.status();
  std::vector<uint8_t> want(168, 0);
  Put(want, 0, {0x01, 0x00, 0x00, 0x00});        // TCP_V4_FLOW
  Put(want, kHu + 0, {192, 0, 2, 1});            // ip4src, network order
  Put(want, kHu + 4, {198, 51, 100, 7});         // ip4dst
  Put(want, kHu + 8, {0x9c, 0x40});              // psrc 40000
  Put(want, kHu + 10, {0x14, 0x51});             // pdst 5201
  Put(want, kMu + 0, {0xff, 0xff, 0xff, 0xff});  // masks: set = match
  Put(want, kMu + 4, {0xff, 0xff, 0xff, 0xff});
  Put(want, kMu + 8, {0xff, 0xff});
  Put(want, kMu + 10, {0xff, 0xff});
  Put(want, kRingCookie, {3, 0, 0, 0, 0, 0, 0, 0});
  Put(want, kLocation, {7, 0, 0, 0});
  EXPECT_THAT(BytesOf(&*fs, sizeof(*fs)), ElementsAreArray(want));
}

TEST(EncodeFlowSpecTest, V4ThreeTupleLeavesSourceWildcard) {
  FlowRule rule;
  rule.match.family = AF_INET;
  rule.match.dst_ip = "10.1.2.3";
  rule.match.dst_port = 443;  // 0x01bb
  rule.queue = 15;
  // location defaults to kRxClsLocAny
  absl::StatusOr<ethtool_rx_flow_spec> fs = EncodeFlowSpec(rule);
  ASSERT_TRUE(fs.ok()) << fs.status();
  std::vector<uint8_t> want(168, 0);
  Put(want, 0, {0x01, 0x00, 0x00, 0x00});
  Put(want, kHu + 4, {10, 1, 2, 3});
  Put(want, kHu + 10, {0x01, 0xbb});
  Put(want, kMu + 4, {0xff, 0xff, 0xff, 0xff});
  Put(want, kMu + 10, {0xff, 0xff});
  Put(want, kRingCookie, {15, 0, 0, 0, 0, 0, 0, 0});
  Put(want, kLocation, {0xff, 0xff, 0xff, 0xff});  // RX_CLS_LOC_ANY
  EXPECT_THAT(BytesOf(&*fs, sizeof(*fs)), ElementsAreArray(want));
}

TEST(EncodeFlowSpecTest, V6FiveTupleBytes) {
  FlowRule rule;
  rule.match.family = AF_INET6;
  rule.match.src_ip = "2001:db8::1";
  rule.match.dst_ip = "fd00:1:2::abcd";
  rule.match.src_port = 1;
  rule.match.dst_port = 0x1234;
  rule.queue = 2;
  rule.location = 0;
  absl::StatusOr<ethtool_rx_flow_spec> fs = EncodeFlowSpec(rule);
  ASSERT_TRUE(fs.ok()) << fs.status();
  std::vector<uint8_t> want(168, 0);
  Put(want, 0, {0x05, 0x00, 0x00, 0x00});  // TCP_V6_FLOW
  Put(want, kHu + 0,
      {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01});
  Put(want, kHu + 16,
      {0xfd, 0x00, 0x00, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd});
  Put(want, kHu + 32, {0x00, 0x01});  // psrc
  Put(want, kHu + 34, {0x12, 0x34});  // pdst
  for (size_t i = 0; i < 32; ++i) Put(want, kMu + i, {0xff});
  Put(want, kMu + 32, {0xff, 0xff, 0xff, 0xff});
  Put(want, kRingCookie, {2, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_THAT(BytesOf(&*fs, sizeof(*fs)), ElementsAreArray(want));
}

TEST(EncodeFlowSpecTest, RssContextRuleSetsFlowRssAndContext) {
  FlowRule rule;
  rule.match.family = AF_INET;
  rule.match.dst_ip = "10.0.0.1";
  rule.match.dst_port = 80;  // 0x0050
  rule.queue = 0;            // offset 0 in the context's table
  rule.rss_context = 2;
  rule.location = 5;
  absl::StatusOr<ethtool_rxnfc> nfc = EncodeRuleInsert(rule);
  ASSERT_TRUE(nfc.ok()) << nfc.status();
  std::vector<uint8_t> want(192, 0);
  Put(want, 0, {0x32, 0x00, 0x00, 0x00});        // ETHTOOL_SRXCLSRLINS
  Put(want, kFs + 0, {0x01, 0x00, 0x00, 0x20});  // TCP_V4_FLOW | FLOW_RSS
  Put(want, kFs + kHu + 4, {10, 0, 0, 1});
  Put(want, kFs + kHu + 10, {0x00, 0x50});
  Put(want, kFs + kMu + 4, {0xff, 0xff, 0xff, 0xff});
  Put(want, kFs + kMu + 10, {0xff, 0xff});
  Put(want, kFs + kLocation, {5, 0, 0, 0});
  Put(want, kRssContext, {2, 0, 0, 0});
  EXPECT_THAT(BytesOf(&*nfc, sizeof(*nfc)), ElementsAreArray(want));
}

TEST(EncodeFlowSpecTest, InvalidAddressesNameTheField) {
  FlowRule rule = V4FiveTuple();
  rule.match.src_ip = "192.0.2.256";
  absl::StatusOr<ethtool_rx_flow_spec> fs = EncodeFlowSpec(rule);
  ASSERT_EQ(fs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fs.status().message(), HasSubstr("match.src_ip"));
  EXPECT_THAT(fs.status().message(), HasSubstr("IPv4"));

  rule = V4FiveTuple();
  rule.match.dst_ip = "2001:db8::1";  // v6 text in a v4 rule
  fs = EncodeFlowSpec(rule);
  ASSERT_EQ(fs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fs.status().message(), HasSubstr("match.dst_ip"));

  rule = V4FiveTuple();
  rule.match.family = AF_INET6;  // v4 text in a v6 rule
  fs = EncodeFlowSpec(rule);
  ASSERT_EQ(fs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fs.status().message(), HasSubstr("match.src_ip"));
  EXPECT_THAT(fs.status().message(), HasSubstr("IPv6"));

  rule = V4FiveTuple();
  rule.match.family = AF_UNSPEC;
  fs = EncodeFlowSpec(rule);
  ASSERT_EQ(fs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fs.status().message(), HasSubstr("match.family"));
}

TEST(DecodeFlowSpecTest, RoundTrips) {
  FlowRule v6;
  v6.match.family = AF_INET6;
  v6.match.dst_ip = "2001:db8::2";
  v6.match.dst_port = 9000;
  v6.queue = 6;
  v6.rss_context = 3;
  v6.location = 12;
  for (const FlowRule& rule : {V4FiveTuple(), v6}) {
    absl::StatusOr<ethtool_rxnfc> nfc = EncodeRuleInsert(rule);
    ASSERT_TRUE(nfc.ok()) << nfc.status();
    absl::StatusOr<FlowRule> back = DecodeFlowSpec(nfc->fs, nfc->rss_context);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->match, rule.match);
    EXPECT_EQ(back->queue, rule.queue);
    EXPECT_EQ(back->rss_context, rule.rss_context);
    EXPECT_EQ(back->location, rule.location);
  }
}

TEST(DecodeFlowSpecTest, RejectsWhatFlowRuleCannotHold) {
  absl::StatusOr<ethtool_rx_flow_spec> fs = EncodeFlowSpec(V4FiveTuple());
  ASSERT_TRUE(fs.ok());
  ethtool_rx_flow_spec partial = *fs;
  partial.m_u.tcp_ip4_spec.ip4src = htonl(0xffffff00);  // a /24
  EXPECT_THAT(DecodeFlowSpec(partial, 0).status().message(),
              HasSubstr("src_ip has a partial mask"));
  ethtool_rx_flow_spec drop = *fs;
  drop.ring_cookie = RX_CLS_FLOW_DISC;
  EXPECT_FALSE(DecodeFlowSpec(drop, 0).ok());
  ethtool_rx_flow_spec udp = *fs;
  udp.flow_type = UDP_V4_FLOW;
  EXPECT_THAT(DecodeFlowSpec(udp, 0).status().message(),
              HasSubstr("flow_type 0x2"));
}

// A driver behind the ioctl seam, answering like net/ethtool/ioctl.c and a
// driver with an ntuple table and RSS contexts would. Records every request.
class FakeDriver {
 public:
  struct Call {
    std::string ifname;
    uint32_t cmd = 0;
    std::vector<uint8_t> bytes;  // the command struct as the kernel saw it
  };

  uint32_t table_size = 8;
  bool driver_picks = false;
  uint32_t driver_location = 1000;  // where a driver that picks puts a rule
  std::vector<uint32_t> rules;
  uint32_t rx_rings = 4;
  uint8_t hfunc = 1;  // ETH_RSS_HASH_TOP (kernel-internal name)
  std::vector<uint32_t> indir = {0, 1, 2, 3, 0, 1, 2, 3};
  std::vector<uint8_t> key = {1, 2, 3, 4, 5, 6, 7, 8};
  uint32_t next_context = 1;
  std::map<uint32_t, int> errno_for_cmd;  // fail these commands
  std::vector<Call> calls;

  EthtoolIoctl::IoctlFn Fn() {
    // NOLINTNEXTLINE(google-runtime-int): ioctl(2)'s request type.
    return [this](unsigned long request, struct ifreq* ifr) {
      return Handle(request, ifr);
    };
  }

 private:
  static size_t RequestSize(uint32_t cmd, const uint8_t* p) {
    switch (cmd) {
      case ETHTOOL_GRXCLSRLALL: {
        uint32_t n = 0;
        std::memcpy(&n, p + 184, 4);
        return std::max<size_t>(192, 188 + 4 * size_t{n});
      }
      case ETHTOOL_GRSSH:
      case ETHTOOL_SRSSH: {
        ethtool_rxfh h;
        std::memcpy(&h, p, sizeof(h));
        size_t n = 24 + h.key_size;
        if (h.indir_size != ETH_RXFH_INDIR_NO_CHANGE) {
          n += 4 * size_t{h.indir_size};
        }
        return n;
      }
      case ETHTOOL_GRXFHINDIR:
      case ETHTOOL_SRXFHINDIR: {
        uint32_t size = 0;
        std::memcpy(&size, p + 4, 4);
        return 8 + 4 * size_t{size};
      }
      default:
        return sizeof(ethtool_rxnfc);
    }
  }

  int Fail(int err) {
    errno = err;
    return -1;
  }

  int Handle(unsigned long request,  // NOLINT(google-runtime-int)
             struct ifreq* ifr) {
    EXPECT_EQ(request, SIOCETHTOOL);
    auto* p = reinterpret_cast<uint8_t*>(ifr->ifr_data);
    uint32_t cmd = 0;
    std::memcpy(&cmd, p, 4);
    calls.push_back({ifr->ifr_name, cmd, BytesOf(p, RequestSize(cmd, p))});
    if (auto it = errno_for_cmd.find(cmd); it != errno_for_cmd.end()) {
      return Fail(it->second);
    }
    switch (cmd) {
      case ETHTOOL_GRXRINGS: {
        ethtool_rxnfc nfc;
        std::memcpy(&nfc, p, sizeof(nfc));
        nfc.data = rx_rings;
        std::memcpy(p, &nfc, sizeof(nfc));
        return 0;
      }
      case ETHTOOL_GRXCLSRLCNT: {
        ethtool_rxnfc nfc;
        std::memcpy(&nfc, p, sizeof(nfc));
        nfc.data = table_size | (driver_picks ? RX_CLS_LOC_SPECIAL : 0);
        nfc.rule_cnt = static_cast<uint32_t>(rules.size());
        std::memcpy(p, &nfc, sizeof(nfc));
        return 0;
      }
      case ETHTOOL_GRXCLSRLALL: {
        ethtool_rxnfc nfc;
        std::memcpy(&nfc, p, sizeof(nfc));
        if (nfc.rule_cnt < rules.size()) return Fail(EMSGSIZE);
        nfc.data = table_size;
        nfc.rule_cnt = static_cast<uint32_t>(rules.size());
        std::memcpy(p, &nfc, sizeof(nfc));
        std::memcpy(p + 188, rules.data(), 4 * rules.size());
        return 0;
      }
      case ETHTOOL_SRXCLSRLINS: {
        ethtool_rxnfc nfc;
        std::memcpy(&nfc, p, sizeof(nfc));
        uint32_t loc = nfc.fs.location;
        if (loc == RX_CLS_LOC_ANY) {
          if (!driver_picks) return Fail(EINVAL);
          loc = driver_location;
        }
        if (std::find(rules.begin(), rules.end(), loc) != rules.end()) {
          return Fail(EEXIST);
        }
        rules.push_back(loc);
        nfc.fs.location = loc;
        std::memcpy(p, &nfc, sizeof(nfc));
        return 0;
      }
      case ETHTOOL_SRXCLSRLDEL: {
        ethtool_rxnfc nfc;
        std::memcpy(&nfc, p, sizeof(nfc));
        auto it = std::find(rules.begin(), rules.end(), nfc.fs.location);
        if (it == rules.end()) return Fail(ENOENT);
        rules.erase(it);
        return 0;
      }
      case ETHTOOL_GRSSH: {
        ethtool_rxfh h;
        std::memcpy(&h, p, sizeof(h));
        const uint32_t want_indir = h.indir_size;
        const uint32_t want_key = h.key_size;
        h.indir_size = static_cast<uint32_t>(indir.size());
        h.key_size = static_cast<uint32_t>(key.size());
        h.hfunc = hfunc;
        std::memcpy(p, &h, sizeof(h));
        if (want_indir == 0 && want_key == 0) return 0;
        if (want_indir != indir.size() || want_key != key.size()) {
          return Fail(EINVAL);
        }
        std::memcpy(p + 24, indir.data(), 4 * indir.size());
        std::memcpy(p + 24 + 4 * indir.size(), key.data(), key.size());
        return 0;
      }
      case ETHTOOL_SRSSH: {
        ethtool_rxfh h;
        std::memcpy(&h, p, sizeof(h));
        if (h.rss_context == ETH_RXFH_CONTEXT_ALLOC) {
          h.rss_context = next_context++;
          std::memcpy(p, &h, sizeof(h));
        }
        return 0;
      }
      case ETHTOOL_GRXFHINDIR: {
        uint32_t size = 0;
        std::memcpy(&size, p + 4, 4);
        const uint32_t dev_size = static_cast<uint32_t>(indir.size());
        std::memcpy(p + 4, &dev_size, 4);
        if (size == 0) return 0;
        if (size != dev_size) return Fail(EINVAL);
        std::memcpy(p + 8, indir.data(), 4 * indir.size());
        return 0;
      }
      case ETHTOOL_SRXFHINDIR:
        return 0;
      default:
        return Fail(EOPNOTSUPP);
    }
  }
};

class EthtoolIoctlTest : public ::testing::Test {
 protected:
  FakeDriver nic_;
  EthtoolIoctl ethtool_{nic_.Fn()};
};

TEST_F(EthtoolIoctlTest, GetRxRingsReadsData) {
  absl::StatusOr<uint32_t> rings = ethtool_.GetRxRings("eth9");
  ASSERT_TRUE(rings.ok()) << rings.status();
  EXPECT_EQ(*rings, 4u);
  ASSERT_EQ(nic_.calls.size(), 1u);
  EXPECT_EQ(nic_.calls[0].ifname, "eth9");
  std::vector<uint8_t> want(192, 0);
  Put(want, 0, {0x2d, 0, 0, 0});
  EXPECT_THAT(nic_.calls[0].bytes, ElementsAreArray(want));
}

TEST_F(EthtoolIoctlTest, GetRulesCountsThenListsLocations) {
  nic_.rules = {7, 2};
  absl::StatusOr<RuleTableInfo> table = ethtool_.GetRules("eth9");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_THAT(table->locations, ElementsAre(7, 2));
  EXPECT_EQ(table->table_size, 8u);
  EXPECT_FALSE(table->driver_picks_location);
  ASSERT_EQ(nic_.calls.size(), 2u);
  EXPECT_EQ(nic_.calls[0].cmd, uint32_t{ETHTOOL_GRXCLSRLCNT});
  EXPECT_EQ(nic_.calls[1].cmd, uint32_t{ETHTOOL_GRXCLSRLALL});
  EXPECT_EQ(U32At(nic_.calls[1].bytes, kRssContext), 2u);  // rule_cnt
}

TEST_F(EthtoolIoctlTest, GetRulesOnEmptyTableSkipsTheListing) {
  nic_.driver_picks = true;
  nic_.table_size = 1024;
  absl::StatusOr<RuleTableInfo> table = ethtool_.GetRules("eth9");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->locations.empty());
  EXPECT_EQ(table->table_size, 1024u);  // RX_CLS_LOC_SPECIAL stripped
  EXPECT_TRUE(table->driver_picks_location);
  EXPECT_EQ(nic_.calls.size(), 1u);
}

TEST_F(EthtoolIoctlTest, InsertPicksTheHighestFreeSlot) {
  nic_.rules = {7, 6, 3};
  absl::StatusOr<uint32_t> loc = ethtool_.InsertRule("eth9", V4FiveTupleAny());
  ASSERT_TRUE(loc.ok()) << loc.status();
  EXPECT_EQ(*loc, 5u);
  ASSERT_EQ(nic_.calls.size(), 3u);
  EXPECT_EQ(nic_.calls[2].cmd, uint32_t{ETHTOOL_SRXCLSRLINS});
  EXPECT_EQ(U32At(nic_.calls[2].bytes, kFs + kLocation), 5u);
  EXPECT_THAT(nic_.rules, ElementsAre(7, 6, 3, 5));
}

TEST_F(EthtoolIoctlTest, InsertIntoAFullTableIsResourceExhausted) {
  nic_.rules = {0, 1, 2, 3, 4, 5, 6, 7};
  absl::StatusOr<uint32_t> loc = ethtool_.InsertRule("eth9", V4FiveTupleAny());
  ASSERT_EQ(loc.status().code(), absl::StatusCode::kResourceExhausted)
      << loc.status();
  EXPECT_THAT(loc.status().message(),
              HasSubstr("rule table full (8 of 8 used)"));
  EXPECT_THAT(loc.status().message(), HasSubstr("eth9"));
  for (const FakeDriver::Call& call : nic_.calls) {
    EXPECT_NE(call.cmd, uint32_t{ETHTOOL_SRXCLSRLINS});
  }
}

TEST_F(EthtoolIoctlTest, InsertLetsAPickingDriverChoose) {
  nic_.driver_picks = true;
  nic_.table_size = 2048;
  nic_.driver_location = 42;
  absl::StatusOr<uint32_t> loc = ethtool_.InsertRule("eth9", V4FiveTupleAny());
  ASSERT_TRUE(loc.ok()) << loc.status();
  EXPECT_EQ(*loc, 42u);  // what the driver wrote back in fs.location
  ASSERT_EQ(nic_.calls.size(), 2u);  // no GRXCLSRLALL: the table is empty
  EXPECT_EQ(U32At(nic_.calls[1].bytes, kFs + kLocation), RX_CLS_LOC_ANY);
}

TEST_F(EthtoolIoctlTest, InsertAtAGivenLocationAsksNothing) {
  absl::StatusOr<uint32_t> loc = ethtool_.InsertRule("eth9", V4FiveTuple());
  ASSERT_TRUE(loc.ok()) << loc.status();
  EXPECT_EQ(*loc, 7u);
  ASSERT_EQ(nic_.calls.size(), 1u);
  absl::StatusOr<ethtool_rxnfc> want = EncodeRuleInsert(V4FiveTuple());
  ASSERT_TRUE(want.ok());
  EXPECT_THAT(nic_.calls[0].bytes,
              ElementsAreArray(BytesOf(&*want, sizeof(*want))));
}

TEST_F(EthtoolIoctlTest, DeleteRuleSendsTheLocation) {
  nic_.rules = {4};
  ASSERT_TRUE(ethtool_.DeleteRule("eth9", 4).ok());
  std::vector<uint8_t> want(192, 0);
  Put(want, 0, {0x31, 0, 0, 0});
  Put(want, kFs + kLocation, {4, 0, 0, 0});
  EXPECT_THAT(nic_.calls[0].bytes, ElementsAreArray(want));
  absl::Status again = ethtool_.DeleteRule("eth9", 4);
  EXPECT_EQ(StatusErrno(again), ENOENT) << again;
}

TEST_F(EthtoolIoctlTest, ErrorsKeepErrnoAndNameTheCommand) {
  nic_.errno_for_cmd[ETHTOOL_GRXRINGS] = EOPNOTSUPP;
  absl::StatusOr<uint32_t> rings = ethtool_.GetRxRings("eth9");
  ASSERT_FALSE(rings.ok());
  EXPECT_EQ(rings.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(StatusErrno(rings.status()), EOPNOTSUPP);
  EXPECT_THAT(rings.status().message(), HasSubstr("ethtool GRXRINGS eth9"));

  nic_.errno_for_cmd[ETHTOOL_SRXCLSRLINS] = EPERM;
  absl::StatusOr<uint32_t> loc = ethtool_.InsertRule("eth9", V4FiveTuple());
  EXPECT_EQ(loc.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusErrno(loc.status()), EPERM);
  EXPECT_THAT(loc.status().message(), HasSubstr("ethtool SRXCLSRLINS eth9"));

  // The free-slot search fails on its first read.
  nic_.errno_for_cmd[ETHTOOL_GRXCLSRLCNT] = EOPNOTSUPP;
  loc = ethtool_.InsertRule("eth9", V4FiveTupleAny());
  EXPECT_EQ(StatusErrno(loc.status()), EOPNOTSUPP);
  EXPECT_THAT(loc.status().message(), HasSubstr("ethtool GRXCLSRLCNT eth9"));
}

TEST_F(EthtoolIoctlTest, BadInterfaceNamesNeverReachTheKernel) {
  EXPECT_EQ(ethtool_.GetRxRings("").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ethtool_.GetRxRings("sixteen-chars-xx").status().code(),
            absl::StatusCode::kInvalidArgument);
  FlowRule bad = V4FiveTuple();
  bad.match.dst_ip = "nope";
  EXPECT_EQ(ethtool_.InsertRule("eth9", bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(nic_.calls.empty());
}

TEST_F(EthtoolIoctlTest, GetRssQueriesSizesThenReads) {
  absl::StatusOr<RssInfo> rss = ethtool_.GetRss("eth9", 0);
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_EQ(rss->context, 0u);
  EXPECT_EQ(rss->hfunc, 1u);
  EXPECT_EQ(rss->indir, nic_.indir);
  EXPECT_EQ(rss->hkey, nic_.key);
  ASSERT_EQ(nic_.calls.size(), 2u);
  std::vector<uint8_t> query(24, 0);
  Put(query, 0, {0x46, 0, 0, 0});  // ETHTOOL_GRSSH, context 0, sizes 0
  EXPECT_THAT(nic_.calls[0].bytes, ElementsAreArray(query));
  EXPECT_EQ(U32At(nic_.calls[1].bytes, 8), 8u);   // indir_size
  EXPECT_EQ(U32At(nic_.calls[1].bytes, 12), 8u);  // key_size
  EXPECT_EQ(nic_.calls[1].bytes.size(), 24u + 32 + 8);
}

TEST_F(EthtoolIoctlTest, GetRssOfAContextPassesIt) {
  absl::StatusOr<RssInfo> rss = ethtool_.GetRss("eth9", 3);
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_EQ(rss->context, 3u);
  EXPECT_EQ(U32At(nic_.calls[0].bytes, 4), 3u);
  EXPECT_EQ(U32At(nic_.calls[1].bytes, 4), 3u);
}

TEST_F(EthtoolIoctlTest, GetRssFallsBackToGrxfhindirForTheMainTable) {
  nic_.errno_for_cmd[ETHTOOL_GRSSH] = EOPNOTSUPP;
  absl::StatusOr<RssInfo> rss = ethtool_.GetRss("eth9", 0);
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_EQ(rss->indir, nic_.indir);
  EXPECT_TRUE(rss->hkey.empty());
  ASSERT_EQ(nic_.calls.size(), 3u);
  EXPECT_THAT(nic_.calls[1].bytes, ElementsAre(0x38, 0, 0, 0, 0, 0, 0, 0));
  EXPECT_EQ(nic_.calls[2].cmd, uint32_t{ETHTOOL_GRXFHINDIR});
  EXPECT_EQ(U32At(nic_.calls[2].bytes, 4), 8u);

  // No fallback for contexts, and the GRSSH error wins if both fail.
  EXPECT_EQ(StatusErrno(ethtool_.GetRss("eth9", 1).status()), EOPNOTSUPP);
  nic_.errno_for_cmd[ETHTOOL_GRXFHINDIR] = EOPNOTSUPP;
  absl::StatusOr<RssInfo> none = ethtool_.GetRss("eth9", 0);
  EXPECT_EQ(StatusErrno(none.status()), EOPNOTSUPP);
  EXPECT_THAT(none.status().message(), HasSubstr("ethtool GRSSH eth9"));
}

TEST_F(EthtoolIoctlTest, SetMainTableUsesSrxfhindir) {
  const std::vector<uint32_t> table = {1, 2, 1, 2};
  ASSERT_TRUE(ethtool_.SetRssIndir("eth9", 0, table).ok());
  EXPECT_THAT(nic_.calls[0].bytes,
              ElementsAre(0x39, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1,
                          0, 0, 0, 2, 0, 0, 0));
  // An empty table resets to the driver's default: size 0.
  ASSERT_TRUE(ethtool_.SetRssIndir("eth9", 0, {}).ok());
  EXPECT_THAT(nic_.calls[1].bytes, ElementsAre(0x39, 0, 0, 0, 0, 0, 0, 0));
}

TEST_F(EthtoolIoctlTest, SetContextTableUsesSrsshKeepingEverythingElse) {
  const std::vector<uint32_t> table = {5, 6};
  ASSERT_TRUE(ethtool_.SetRssIndir("eth9", 2, table).ok());
  std::vector<uint8_t> want(24 + 8, 0);
  Put(want, 0, {0x47, 0, 0, 0});  // ETHTOOL_SRSSH
  Put(want, 4, {2, 0, 0, 0});     // rss_context
  Put(want, 8, {2, 0, 0, 0});     // indir_size
  Put(want, 17, {0xff});          // input_xfrm = RXH_XFRM_NO_CHANGE
  Put(want, 24, {5, 0, 0, 0, 6, 0, 0, 0});
  EXPECT_THAT(nic_.calls[0].bytes, ElementsAreArray(want));
  // Resetting a context's table would delete the context: refused here.
  absl::Status reset = ethtool_.SetRssIndir("eth9", 2, {});
  EXPECT_EQ(reset.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nic_.calls.size(), 1u);
}

TEST_F(EthtoolIoctlTest, CreateContextReturnsTheKernelsId) {
  nic_.next_context = 9;
  const std::vector<uint32_t> table = {3, 4};
  absl::StatusOr<uint32_t> id = ethtool_.CreateRssContext("eth9", table);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 9u);
  std::vector<uint8_t> want(24 + 8, 0);
  Put(want, 0, {0x47, 0, 0, 0});
  Put(want, 4, {0xff, 0xff, 0xff, 0xff});  // ETH_RXFH_CONTEXT_ALLOC
  Put(want, 8, {2, 0, 0, 0});
  Put(want, 17, {0xff});
  Put(want, 24, {3, 0, 0, 0, 4, 0, 0, 0});
  EXPECT_THAT(nic_.calls[0].bytes, ElementsAreArray(want));
}

TEST_F(EthtoolIoctlTest, DeleteContextSendsIndirSizeZero) {
  ASSERT_TRUE(ethtool_.DeleteRssContext("eth9", 9).ok());
  std::vector<uint8_t> want(24, 0);
  Put(want, 0, {0x47, 0, 0, 0});
  Put(want, 4, {9, 0, 0, 0});
  Put(want, 17, {0xff});
  EXPECT_THAT(nic_.calls[0].bytes, ElementsAreArray(want));
  EXPECT_EQ(ethtool_.DeleteRssContext("eth9", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nic_.calls.size(), 1u);
}

TEST(EthtoolIoctlOpenTest, OpensASocketAndNamesUnknownDevices) {
  absl::StatusOr<std::unique_ptr<EthtoolIoctl>> ethtool = EthtoolIoctl::Open();
  ASSERT_TRUE(ethtool.ok()) << ethtool.status();
  // net/core/dev_ioctl.c: SIOCETHTOOL on a name that does not exist.
  absl::StatusOr<uint32_t> rings = (*ethtool)->GetRxRings("dvnosuch0");
  ASSERT_FALSE(rings.ok());
  EXPECT_EQ(StatusErrno(rings.status()), ENODEV) << rings.status();
}

}  // namespace
}  // namespace devmem
