#include "kernel/ethtool_msg.h"

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/uapi_compat.h"

namespace devmem {
namespace {

#include "kernel/testdata/veth_replies.inc"
#include "kernel/testdata/virtio_rss_reply.inc"

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<uint8_t> Bytes(absl::Span<const uint8_t> span) {
  return std::vector<uint8_t>(span.begin(), span.end());
}

// --- Builders, byte for byte against layouts derived by hand. ---

TEST(EthtoolMsgTest, ChannelsGetByIndex) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 32, type 21 (family id), flags REQUEST, seq 0, pid 0
      0x20, 0x00, 0x00, 0x00, 0x15, 0x00, 0x01, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 17 CHANNELS_GET, version 1, reserved
      0x11, 0x01, 0x00, 0x00,
      // nlattr len 12, type NLA_F_NESTED | ETHTOOL_A_CHANNELS_HEADER (1)
      0x0c, 0x00, 0x01, 0x80,
      //   nlattr len 8, ETHTOOL_A_HEADER_DEV_INDEX (1), u32 7
      0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00};
  GenlMsg msg = BuildChannelsGet(21, EthtoolDev::ByIndex(7));
  EXPECT_FALSE(msg.overflowed());
  EXPECT_THAT(Bytes(msg.bytes()), ElementsAreArray(want));
}

TEST(EthtoolMsgTest, ChannelsGetByShortName) {
  const std::vector<uint8_t> want = {
      0x20, 0x00, 0x00, 0x00, 0x15, 0x00, 0x01, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      0x11, 0x01, 0x00, 0x00,                          //
      0x0c, 0x00, 0x01, 0x80,                          // header nest, len 12
      // nlattr len 7 (4 + "lo\0"), ETHTOOL_A_HEADER_DEV_NAME (2), 1 pad byte
      0x07, 0x00, 0x02, 0x00, 'l', 'o', 0x00, 0x00};
  EXPECT_THAT(Bytes(BuildChannelsGet(21, EthtoolDev::ByName("lo")).bytes()),
              ElementsAreArray(want));
}

TEST(EthtoolMsgTest, RingsGetByNameIsPaddedToFourBytes) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 40
      0x28, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 15 RINGS_GET
      0x0f, 0x01, 0x00, 0x00,
      // nest len 20: NLA_F_NESTED | ETHTOOL_A_RINGS_HEADER (1)
      0x14, 0x00, 0x01, 0x80,
      // nlattr len 14 (4 + "veth-dm01\0" 10), DEV_NAME, then 2 pad bytes
      0x0e, 0x00, 0x02, 0x00, 'v', 'e', 't', 'h', '-', 'd', 'm', '0', '1', 0x00,
      0x00, 0x00};
  EXPECT_THAT(
      Bytes(BuildRingsGet(0x1c, EthtoolDev::ByName("veth-dm01")).bytes()),
      ElementsAreArray(want));
}

TEST(EthtoolMsgTest, RingsGetByIndex) {
  const std::vector<uint8_t> want = {
      0x20, 0x00, 0x00, 0x00, 0x15, 0x00, 0x01, 0x00,   //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   //
      0x0f, 0x01, 0x00, 0x00,                           // cmd 15
      0x0c, 0x00, 0x01, 0x80,                           //
      0x08, 0x00, 0x01, 0x00, 0x2a, 0x01, 0x00, 0x00};  // ifindex 298
  EXPECT_THAT(Bytes(BuildRingsGet(21, EthtoolDev::ByIndex(298)).bytes()),
              ElementsAreArray(want));
}

TEST(EthtoolMsgTest, FeaturesGetAsksForVerboseBitsets) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 40, type 21, flags REQUEST
      0x28, 0x00, 0x00, 0x00, 0x15, 0x00, 0x01, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 11 FEATURES_GET
      0x0b, 0x01, 0x00, 0x00,
      // nest len 20: NLA_F_NESTED | ETHTOOL_A_FEATURES_HEADER (1)
      0x14, 0x00, 0x01, 0x80,
      //   DEV_INDEX (1) = 3
      0x08, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00,
      //   ETHTOOL_A_HEADER_FLAGS (3) = 0: no COMPACT_BITSETS
      0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_THAT(Bytes(BuildFeaturesGet(21, EthtoolDev::ByIndex(3)).bytes()),
              ElementsAreArray(want));
}

TEST(EthtoolMsgTest, SeqIsStampedInPlace) {
  GenlMsg msg = BuildChannelsGet(21, EthtoolDev::ByIndex(7));
  msg.set_seq(0x01020304);
  EXPECT_EQ(msg.seq(), 0x01020304u);
  const std::vector<uint8_t> bytes = Bytes(msg.bytes());
  EXPECT_THAT(std::vector<uint8_t>(bytes.begin() + 8, bytes.begin() + 12),
              ElementsAreArray({0x04, 0x03, 0x02, 0x01}));
}

// --- SET / ACT builders: flags REQUEST|ACK (0x0005), then the layouts drawn
// in ethtool_msg.h. Family id 21, ifindex 7 unless said otherwise. ---

TEST(EthtoolMsgTest, RingsSetSplitAndThreshold) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 48, type 21, flags REQUEST|ACK, seq 0, pid 0
      0x30, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 16 RINGS_SET, version 1
      0x10, 0x01, 0x00, 0x00,
      // header nest len 12: DEV_INDEX 7
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
      // TCP_DATA_SPLIT (11), len 5, u8 2 = ENABLED, 3 pad bytes
      0x05, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00,
      // HDS_THRESH (17), u32 0
      0x08, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00};
  RingsSet rings;
  rings.tcp_data_split = TcpDataSplit::kEnabled;
  rings.hds_thresh = 0;
  GenlMsg msg = BuildRingsSet(21, EthtoolDev::ByIndex(7), rings);
  EXPECT_FALSE(msg.overflowed());
  EXPECT_THAT(Bytes(msg.bytes()), ElementsAreArray(want));
}

TEST(EthtoolMsgTest, RingsSetSendsOnlyWhatIsSet) {
  const std::vector<uint8_t> split_only = {
      0x28, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  // len 40
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      0x10, 0x01, 0x00, 0x00,                          // RINGS_SET
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
      // TCP_DATA_SPLIT = 0 (UNKNOWN, "auto"): sent, because it was set
      0x05, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00};
  RingsSet rings;
  rings.tcp_data_split = TcpDataSplit::kUnknown;
  EXPECT_THAT(Bytes(BuildRingsSet(21, EthtoolDev::ByIndex(7), rings).bytes()),
              ElementsAreArray(split_only));

  const std::vector<uint8_t> threshold_only = {
      0x28, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  // len 40
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      0x10, 0x01, 0x00, 0x00,                          //
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
      // HDS_THRESH (17) = 256
      0x08, 0x00, 0x11, 0x00, 0x00, 0x01, 0x00, 0x00};
  RingsSet thresh;
  thresh.hds_thresh = 256;
  EXPECT_THAT(Bytes(BuildRingsSet(21, EthtoolDev::ByIndex(7), thresh).bytes()),
              ElementsAreArray(threshold_only));

  // Nothing set: just the header (the kernel treats it as a no-op).
  EXPECT_EQ(
      BuildRingsSet(21, EthtoolDev::ByIndex(7), RingsSet()).bytes().size(),
      32u);
}

TEST(EthtoolMsgTest, FeaturesSetNtupleOn) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 80, type 21, flags REQUEST|ACK
      0x50, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 12 FEATURES_SET
      0x0c, 0x01, 0x00, 0x00,
      // header nest len 20: DEV_INDEX 3, FLAGS 0 (verbose bitsets)
      0x14, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00,
      0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
      // WANTED (3) nest len 40, no NOMASK
      0x28, 0x00, 0x03, 0x80,
      //   BITS (3) nest len 36
      0x24, 0x00, 0x03, 0x80,
      //     BIT (1) nest len 32
      0x20, 0x00, 0x01, 0x80,
      //       NAME (2) "rx-ntuple-filter\0": len 21, 3 pad bytes
      0x15, 0x00, 0x02, 0x00, 'r', 'x', '-', 'n', 't', 'u', 'p', 'l', 'e', '-',
      'f', 'i', 'l', 't', 'e', 'r', 0x00, 0x00, 0x00, 0x00,
      //       VALUE (3) flag: on
      0x04, 0x00, 0x03, 0x00};
  GenlMsg msg = BuildFeaturesSetNtuple(21, EthtoolDev::ByIndex(3),
                                       /*enable=*/true);
  EXPECT_FALSE(msg.overflowed());
  EXPECT_THAT(Bytes(msg.bytes()), ElementsAreArray(want));
}

TEST(EthtoolMsgTest, FeaturesSetNtupleOffHasNoValueFlag) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 76
      0x4c, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      0x0c, 0x01, 0x00, 0x00,                          // FEATURES_SET
      0x14, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00,
      0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
      // WANTED len 36 > BITS len 32 > BIT len 28 > NAME only: in the mask,
      // value off
      0x24, 0x00, 0x03, 0x80, 0x20, 0x00, 0x03, 0x80, 0x1c, 0x00, 0x01, 0x80,
      0x15, 0x00, 0x02, 0x00, 'r', 'x', '-', 'n', 't', 'u', 'p', 'l', 'e', '-',
      'f', 'i', 'l', 't', 'e', 'r', 0x00, 0x00, 0x00, 0x00};
  EXPECT_THAT(Bytes(BuildFeaturesSetNtuple(21, EthtoolDev::ByIndex(3),
                                           /*enable=*/false)
                        .bytes()),
              ElementsAreArray(want));
}

TEST(EthtoolMsgTest, ChannelsSetRxTx) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 48, flags REQUEST|ACK
      0x30, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 18 CHANNELS_SET
      0x12, 0x01, 0x00, 0x00,
      // header nest: DEV_INDEX 7
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
      // RX_COUNT (6) 2, TX_COUNT (7) 3
      0x08, 0x00, 0x06, 0x00, 0x02, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x07, 0x00, 0x03, 0x00, 0x00, 0x00};
  ChannelsSet channels;
  channels.rx_count = 2;
  channels.tx_count = 3;
  EXPECT_THAT(
      Bytes(BuildChannelsSet(21, EthtoolDev::ByIndex(7), channels).bytes()),
      ElementsAreArray(want));
}

TEST(EthtoolMsgTest, ChannelsSetAllCountsInOrderByName) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 72
      0x48, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      0x12, 0x01, 0x00, 0x00,                          // CHANNELS_SET
      // header nest len 20: DEV_NAME "veth-dm01\0" (len 14, 2 pad bytes)
      0x14, 0x00, 0x01, 0x80, 0x0e, 0x00, 0x02, 0x00, 'v', 'e', 't', 'h', '-',
      'd', 'm', '0', '1', 0x00, 0x00, 0x00,
      // RX_COUNT 0, TX_COUNT 1, OTHER_COUNT (8) 1, COMBINED_COUNT (9) 8
      0x08, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x07, 0x00, 0x01, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x09, 0x00, 0x08, 0x00, 0x00, 0x00};
  ChannelsSet channels;
  channels.combined_count = 8;
  channels.other_count = 1;
  channels.tx_count = 1;
  channels.rx_count = 0;
  EXPECT_THAT(
      Bytes(BuildChannelsSet(21, EthtoolDev::ByName("veth-dm01"), channels)
                .bytes()),
      ElementsAreArray(want));
}

TEST(EthtoolMsgTest, RssGetMainTableHasNoContext) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 32, flags REQUEST (a GET: no ACK)
      0x20, 0x00, 0x00, 0x00, 0x15, 0x00, 0x01, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 38 RSS_GET
      0x26, 0x01, 0x00, 0x00,
      // header nest (ETHTOOL_A_RSS_HEADER 1): DEV_INDEX 7
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00};
  EXPECT_THAT(Bytes(BuildRssGet(21, EthtoolDev::ByIndex(7), 0).bytes()),
              ElementsAreArray(want));
}

TEST(EthtoolMsgTest, RssGetContext) {
  const std::vector<uint8_t> want = {
      0x28, 0x00, 0x00, 0x00, 0x15, 0x00, 0x01, 0x00,  // len 40
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      0x26, 0x01, 0x00, 0x00,                          // RSS_GET
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
      // CONTEXT (2) = 5
      0x08, 0x00, 0x02, 0x00, 0x05, 0x00, 0x00, 0x00};
  EXPECT_THAT(Bytes(BuildRssGet(21, EthtoolDev::ByIndex(7), 5).bytes()),
              ElementsAreArray(want));
}

TEST(EthtoolMsgTest, RssSetMainTable) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 52, flags REQUEST|ACK
      0x34, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 48 RSS_SET
      0x30, 0x01, 0x00, 0x00,
      // header nest: DEV_INDEX 7
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
      // INDIR (4) len 20: u32 {0, 1, 0, 1}; no CONTEXT for the main table
      0x14, 0x00, 0x04, 0x00,                          //
      0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
  const std::vector<uint32_t> indir = {0, 1, 0, 1};
  EXPECT_THAT(Bytes(BuildRssSet(21, EthtoolDev::ByIndex(7), 0, indir).bytes()),
              ElementsAreArray(want));
}

TEST(EthtoolMsgTest, RssSetEmptyTableIsAnEmptyAttribute) {
  const std::vector<uint8_t> want = {
      0x2c, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  // len 44
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      0x30, 0x01, 0x00, 0x00,                          // RSS_SET
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
      // CONTEXT (2) = 3
      0x08, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00,
      // INDIR (4), len 4: no payload (the reset request)
      0x04, 0x00, 0x04, 0x00};
  EXPECT_THAT(Bytes(BuildRssSet(21, EthtoolDev::ByIndex(7), 3, {}).bytes()),
              ElementsAreArray(want));
}

TEST(EthtoolMsgTest, RssSetTooLargeATableOverflows) {
  const std::vector<uint32_t> fits(1000, 1);
  EXPECT_FALSE(BuildRssSet(21, EthtoolDev::ByIndex(7), 0, fits).overflowed());
  const std::vector<uint32_t> too_large(1100, 1);
  EXPECT_TRUE(
      BuildRssSet(21, EthtoolDev::ByIndex(7), 0, too_large).overflowed());
}

TEST(EthtoolMsgTest, RssCreateAct) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 44, flags REQUEST|ACK
      0x2c, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 49 RSS_CREATE_ACT
      0x31, 0x01, 0x00, 0x00,
      // header nest: DEV_INDEX 7; no CONTEXT (the kernel picks the id)
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
      // INDIR (4) len 12: {2, 3}
      0x0c, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00};
  const std::vector<uint32_t> indir = {2, 3};
  EXPECT_THAT(
      Bytes(BuildRssCreateAct(21, EthtoolDev::ByIndex(7), indir).bytes()),
      ElementsAreArray(want));
  // No table: the driver's default spread, so no INDIR at all.
  EXPECT_EQ(BuildRssCreateAct(21, EthtoolDev::ByIndex(7), {}).bytes().size(),
            32u);
}

TEST(EthtoolMsgTest, RssDeleteAct) {
  const std::vector<uint8_t> want = {
      // nlmsghdr: len 40, flags REQUEST|ACK
      0x28, 0x00, 0x00, 0x00, 0x15, 0x00, 0x05, 0x00,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
      // genlmsghdr: cmd 50 RSS_DELETE_ACT
      0x32, 0x01, 0x00, 0x00, 0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00,
      0x07, 0x00, 0x00, 0x00,
      // CONTEXT (2) = 1
      0x08, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00};
  EXPECT_THAT(Bytes(BuildRssDeleteAct(21, EthtoolDev::ByIndex(7), 1).bytes()),
              ElementsAreArray(want));
}

// --- Parsers on replies captured from this machine's kernel (6.18, veth). ---

TEST(EthtoolMsgTest, ParsesCapturedVethChannels) {
  absl::StatusOr<ChannelsInfo> info = ParseChannelsReply(kVethChannelsReply);
  ASSERT_TRUE(info.ok()) << info.status();
  // ethtool -l: maximums RX 2, TX 2; current RX 1, TX 1; Other/Combined n/a.
  EXPECT_EQ(info->rx_max, 2u);
  EXPECT_EQ(info->tx_max, 2u);
  EXPECT_EQ(info->rx_count, 1u);
  EXPECT_EQ(info->tx_count, 1u);
  EXPECT_FALSE(info->other_max.has_value());
  EXPECT_FALSE(info->other_count.has_value());
  EXPECT_FALSE(info->combined_max.has_value());
  EXPECT_FALSE(info->combined_count.has_value());
}

TEST(EthtoolMsgTest, ParsesCapturedVethFeatures) {
  absl::StatusOr<FeaturesInfo> info = ParseFeaturesReply(kVethFeaturesReply);
  ASSERT_TRUE(info.ok()) << info.status();
  // ethtool -k: "ntuple-filters: off [fixed]".
  EXPECT_FALSE(info->ntuple_hw);
  EXPECT_FALSE(info->ntuple_active);
  // The HW set is sent with a mask, so all 64 bits are listed; bits 2, 12, 13
  // and 32 have empty names (net/ethtool/common.c netdev_features_strings).
  EXPECT_EQ(info->feature_count, 60u);
}

TEST(EthtoolMsgTest, CapturedRepliesAreNotEachOther) {
  EXPECT_FALSE(ParseChannelsReply(kVethFeaturesReply).ok());
  EXPECT_FALSE(ParseRingsReply(kVethChannelsReply).ok());
  absl::StatusOr<FeaturesInfo> wrong = ParseFeaturesReply(kVethChannelsReply);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(),
              HasSubstr("reply command is 18, expected 11"));
}

TEST(EthtoolMsgTest, TruncatedCaptureIsAnError) {
  absl::Span<const uint8_t> whole(kVethChannelsReply);
  absl::StatusOr<ChannelsInfo> info = ParseChannelsReply(whole.first(40));
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseChannelsReply(whole.first(10)).ok());
}

// --- Parsers on hand-made replies (what a 6.14+ HDS-capable NIC sends). ---

// RINGS_GET_REPLY from a NIC with header split on and an hds-thresh range.
alignas(4) constexpr uint8_t kRingsWithHds[] = {
    // nlmsghdr: len 100, type 21, flags 0, seq 1, pid 0
    0x64, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
    // genlmsghdr: cmd 16 RINGS_GET_REPLY, version 1
    0x10, 0x01, 0x00, 0x00,
    // header nest len 24: DEV_INDEX 4, DEV_NAME "eth0"
    0x18, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x09, 0x00, 0x02, 0x00, 'e', 't', 'h', '0', 0x00, 0x00, 0x00, 0x00,
    // RX_MAX (2) 4096, TX_MAX (5) 4096, RX (6) 1024, TX (9) 1024
    0x08, 0x00, 0x02, 0x00, 0x00, 0x10, 0x00, 0x00,  //
    0x08, 0x00, 0x05, 0x00, 0x00, 0x10, 0x00, 0x00,  //
    0x08, 0x00, 0x06, 0x00, 0x00, 0x04, 0x00, 0x00,  //
    0x08, 0x00, 0x09, 0x00, 0x00, 0x04, 0x00, 0x00,  //
    // TCP_DATA_SPLIT (11) u8 2 = ENABLED, 3 pad bytes
    0x05, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00,
    // HDS_THRESH (17) 0, HDS_THRESH_MAX (18) 1024
    0x08, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00,  //
    0x08, 0x00, 0x12, 0x00, 0x00, 0x04, 0x00, 0x00};

TEST(EthtoolMsgTest, ParsesRingsWithTcpDataSplitAndHdsThresh) {
  absl::StatusOr<RingsInfo> info = ParseRingsReply(kRingsWithHds);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rx_max, 4096u);
  EXPECT_EQ(info->tx_max, 4096u);
  EXPECT_EQ(info->rx, 1024u);
  EXPECT_EQ(info->tx, 1024u);
  EXPECT_FALSE(info->rx_mini_max.has_value());
  EXPECT_FALSE(info->rx_buf_len.has_value());
  EXPECT_EQ(info->tcp_data_split, TcpDataSplit::kEnabled);
  EXPECT_EQ(info->hds_thresh, 0u);
  EXPECT_EQ(info->hds_thresh_max, 1024u);
}

// The same NIC on a pre-6.14 kernel with split "auto": the kernel omits
// TCP_DATA_SPLIT (value 0) and has no HDS attributes.
alignas(4) constexpr uint8_t kRingsWithoutHds[] = {
    0x30, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,   //
    0x10, 0x01, 0x00, 0x00,                           // RINGS_GET_REPLY
    0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00,   // header nest
    0x04, 0x00, 0x00, 0x00,                           //
    0x08, 0x00, 0x02, 0x00, 0x00, 0x10, 0x00, 0x00,   // RX_MAX 4096
    0x08, 0x00, 0x0a, 0x00, 0x00, 0x08, 0x00, 0x00};  // RX_BUF_LEN 2048

TEST(EthtoolMsgTest, AbsentTcpDataSplitIsUnknownAndHdsIsAbsent) {
  absl::StatusOr<RingsInfo> info = ParseRingsReply(kRingsWithoutHds);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rx_max, 4096u);
  EXPECT_EQ(info->rx_buf_len, 2048u);
  EXPECT_EQ(info->tcp_data_split, TcpDataSplit::kUnknown);
  EXPECT_FALSE(info->hds_thresh.has_value());
  EXPECT_FALSE(info->hds_thresh_max.has_value());
}

TEST(EthtoolMsgTest, TcpDataSplitDisabled) {
  alignas(4) uint8_t msg[] = {0x1c, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00,
                              0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                              0x10, 0x01, 0x00, 0x00, 0x05, 0x00, 0x0b, 0x00,
                              0x01, 0x00, 0x00, 0x00};  // split = DISABLED
  absl::StatusOr<RingsInfo> info = ParseRingsReply(msg);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->tcp_data_split, TcpDataSplit::kDisabled);
}

TEST(EthtoolMsgTest, ShortU32AttributeIsRejected) {
  alignas(4) uint8_t msg[] = {0x1c, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00,
                              0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                              0x10, 0x01, 0x00, 0x00, 0x06, 0x00, 0x11, 0x00,
                              0x01, 0x00, 0x00, 0x00};  // HDS_THRESH, 2 bytes
  absl::StatusOr<RingsInfo> info = ParseRingsReply(msg);
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(info.status().message(),
              HasSubstr("attribute 17 has 2 bytes, expected 4"));
}

TEST(EthtoolMsgTest, UnalignedInputParses) {
  std::vector<uint8_t> shifted(sizeof(kRingsWithHds) + 1);
  std::copy(std::begin(kRingsWithHds), std::end(kRingsWithHds),
            shifted.begin() + 1);
  absl::StatusOr<RingsInfo> info =
      ParseRingsReply(absl::MakeConstSpan(shifted).subspan(1));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->hds_thresh_max, 1024u);
}

// FEATURES_GET_REPLY with ntuple changeable (HW, mask form: VALUE flag) and
// on (ACTIVE, NOMASK form: listed means on). The index (7) deliberately is not
// the kernel's: the parser must match by name.
alignas(4) constexpr uint8_t kFeaturesNtupleOn[] = {
    // nlmsghdr: len 132
    0x84, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
    // genlmsghdr: cmd 11 FEATURES_GET_REPLY
    0x0b, 0x01, 0x00, 0x00,
    // HW (2) bitset nest, len 56
    0x38, 0x00, 0x02, 0x80,
    //   SIZE (2) = 64
    0x08, 0x00, 0x02, 0x00, 0x40, 0x00, 0x00, 0x00,
    //   BITS (3) nest, len 44
    0x2c, 0x00, 0x03, 0x80,
    //     BIT (1) nest, len 40
    0x28, 0x00, 0x01, 0x80,
    //       INDEX (1) = 7
    0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,
    //       NAME (2) "rx-ntuple-filter\0": len 21, 3 pad bytes
    0x15, 0x00, 0x02, 0x00, 'r', 'x', '-', 'n', 't', 'u', 'p', 'l', 'e', '-',
    'f', 'i', 'l', 't', 'e', 'r', 0x00, 0x00, 0x00, 0x00,
    //       VALUE (3) flag
    0x04, 0x00, 0x03, 0x00,
    // ACTIVE (4) bitset nest, len 56
    0x38, 0x00, 0x04, 0x80,
    //   NOMASK (1) flag
    0x04, 0x00, 0x01, 0x00,
    //   SIZE (2) = 64
    0x08, 0x00, 0x02, 0x00, 0x40, 0x00, 0x00, 0x00,
    //   BITS (3) nest, len 40 -> BIT nest len 36: INDEX 7, NAME
    0x28, 0x00, 0x03, 0x80, 0x24, 0x00, 0x01, 0x80,  //
    0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00,  //
    0x15, 0x00, 0x02, 0x00, 'r', 'x', '-', 'n', 't', 'u', 'p', 'l', 'e', '-',
    'f', 'i', 'l', 't', 'e', 'r', 0x00, 0x00, 0x00, 0x00};

TEST(EthtoolMsgTest, FindsNtupleByNameInHwAndActive) {
  absl::StatusOr<FeaturesInfo> info = ParseFeaturesReply(kFeaturesNtupleOn);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->ntuple_hw);
  EXPECT_TRUE(info->ntuple_active);
  EXPECT_EQ(info->feature_count, 1u);
}

TEST(EthtoolMsgTest, ParsesCapturedVirtioRss) {
  absl::StatusOr<RssInfo> info = ParseRssReply(kVirtioRssReply);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->context, 0u);
  // ethtool -x: "toeplitz: on", i.e. ETH_RSS_HASH_TOP.
  EXPECT_EQ(info->hfunc, 1u);
  // "Operation not supported" for both: the device has neither; the
  // FLOW_HASH nest (8) is skipped.
  EXPECT_TRUE(info->indir.empty());
  EXPECT_TRUE(info->hkey.empty());
}

// RSS_GET_REPLY with a context, a table and a key. Hand-built: the one device
// on the development machine that answers RSS_GET (virtio_net, above) has no
// table or key, and none has contexts. Layout from net/ethtool/rss.c
// rss_fill_reply().
alignas(4) constexpr uint8_t kRssContextReply[] = {
    // nlmsghdr: len 80, type 21, flags 0, seq 4, pid 0
    0x50, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
    // genlmsghdr: cmd 38 RSS_GET_REPLY
    0x26, 0x01, 0x00, 0x00,
    // header nest len 12: DEV_INDEX 4
    0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00,
    // CONTEXT (2) = 2
    0x08, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00,
    // HFUNC (3) = 1 (ETH_RSS_HASH_TOP, Toeplitz)
    0x08, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00,
    // INDIR (4) len 20: u32 {4, 5, 6, 7}
    0x14, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x06, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
    // HKEY (5) len 12: 8 key bytes
    0x0c, 0x00, 0x05, 0x00, 0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2};

TEST(EthtoolMsgTest, ParsesRssContextReply) {
  absl::StatusOr<RssInfo> info = ParseRssReply(kRssContextReply);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->context, 2u);
  EXPECT_EQ(info->hfunc, 1u);
  EXPECT_THAT(info->indir, ElementsAreArray({4u, 5u, 6u, 7u}));
  EXPECT_THAT(info->hkey, ElementsAreArray({0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b,
                                            0x0e, 0xc2}));
}

TEST(EthtoolMsgTest, RssReplyForTheMainTableHasNoContext) {
  alignas(4) constexpr uint8_t msg[] = {
      0x28, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x26, 0x01, 0x00, 0x00,
      // header nest
      0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00,
      // INDIR {1}; no CONTEXT, HFUNC or HKEY
      0x08, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00};
  absl::StatusOr<RssInfo> info = ParseRssReply(msg);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->context, 0u);
  EXPECT_EQ(info->hfunc, 0u);
  EXPECT_THAT(info->indir, ElementsAreArray({1u}));
  EXPECT_TRUE(info->hkey.empty());
}

TEST(EthtoolMsgTest, RssReplyWithARaggedTableIsRejected) {
  alignas(4) constexpr uint8_t msg[] = {
      0x20, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x26, 0x01, 0x00, 0x00,
      // INDIR with 6 bytes (and 2 pad bytes)
      0x0a, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00};
  absl::StatusOr<RssInfo> info = ParseRssReply(msg);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(info.status().message(),
              HasSubstr("attribute 4 has 6 bytes, not a whole number of u32"));
  // And a channels reply is not an RSS reply.
  EXPECT_THAT(ParseRssReply(kVethChannelsReply).status().message(),
              HasSubstr("reply command is 18, expected 38"));
}

TEST(EthtoolMsgTest, ParsesRssCreateActReply) {
  alignas(4) constexpr uint8_t msg[] = {
      // nlmsghdr: len 40
      0x28, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00,
      // genlmsghdr: cmd 51 RSS_CREATE_ACT_REPLY
      0x33, 0x01, 0x00, 0x00, 0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00,
      0x04, 0x00, 0x00, 0x00,
      // CONTEXT (2) = 1
      0x08, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00};
  absl::StatusOr<uint32_t> context = ParseRssCreateActReply(msg);
  ASSERT_TRUE(context.ok()) << context.status();
  EXPECT_EQ(*context, 1u);
  // The same bytes with cmd 38: an RSS_GET reply, not a create reply.
  std::vector<uint8_t> get(std::begin(msg), std::end(msg));
  get[16] = 38;
  EXPECT_THAT(ParseRssCreateActReply(get).status().message(),
              HasSubstr("reply command is 38, expected 51"));
  // Without CONTEXT there is no id to return.
  std::vector<uint8_t> no_context(std::begin(msg), std::end(msg) - 8);
  no_context[0] = 32;
  EXPECT_THAT(ParseRssCreateActReply(no_context).status().message(),
              HasSubstr("no non-zero ETHTOOL_A_RSS_CONTEXT"));
}

TEST(EthtoolMsgTest, CompactBitsetIsRejected) {
  alignas(4) uint8_t msg[] = {
      0x38, 0x00, 0x00, 0x00, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x0b, 0x01, 0x00, 0x00,
      // HW: SIZE 32, VALUE blob, MASK blob (compact form)
      0x14, 0x00, 0x02, 0x80, 0x08, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00,
      0x08, 0x00, 0x04, 0x00, 0xff, 0x00, 0x00, 0x00,
      // ACTIVE: NOMASK, VALUE blob
      0x10, 0x00, 0x04, 0x80, 0x04, 0x00, 0x01, 0x00, 0x08, 0x00, 0x04, 0x00,
      0x0f, 0x00, 0x00, 0x00};
  absl::StatusOr<FeaturesInfo> info = ParseFeaturesReply(msg);
  ASSERT_FALSE(info.ok());
  EXPECT_THAT(info.status().message(), HasSubstr("compact bitset"));
}

}  // namespace
}  // namespace devmem
