#include "kernel/netlink_attr.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace devmem {
namespace {

TEST(NetlinkAttrTest, WalksPaddedAttributesAndMasksFlags) {
  const uint8_t bytes[] = {
      0x05, 0x00, 0x01, 0x00, 0x2a, 0x00, 0x00, 0x00,  // u8 42 + 3 pad
      0x0c, 0x00, 0x02, 0x80,                          // nest (NLA_F_NESTED)
      0x08, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00, 0x00,  //   u32 16
      0x07, 0x00, 0x03, 0x00, 'a',  'b',  0x00, 0x00,  // "ab" + 1 pad
  };
  std::vector<NlAttr> seen;
  EXPECT_TRUE(ForEachAttr(bytes, [&](const NlAttr& a) { seen.push_back(a); }));
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].type, 1);
  EXPECT_FALSE(seen[0].nested);
  EXPECT_EQ(seen[0].U8(), 42);
  EXPECT_EQ(seen[1].type, 2);
  EXPECT_TRUE(seen[1].nested);
  EXPECT_EQ(seen[1].payload.size(), 8u);
  std::vector<uint32_t> inner;
  EXPECT_TRUE(ForEachAttr(seen[1].payload,
                          [&](const NlAttr& a) { inner.push_back(*a.U32()); }));
  EXPECT_EQ(inner, std::vector<uint32_t>{16});
  EXPECT_EQ(seen[2].Str(), "ab");
}

TEST(NetlinkAttrTest, ShortPayloadReadsAsNullopt) {
  const uint8_t bytes[] = {0x06, 0x00, 0x01, 0x00, 0x01, 0x02, 0x00, 0x00};
  bool called = false;
  ForEachAttr(bytes, [&](const NlAttr& a) {
    called = true;
    EXPECT_FALSE(a.U32().has_value());
    EXPECT_EQ(a.U16(), 0x0201);
    EXPECT_EQ(a.Uint(), std::nullopt);
  });
  EXPECT_TRUE(called);
}

TEST(NetlinkAttrTest, UintAcceptsFourOrEightBytes) {
  const uint8_t bytes[] = {0x08, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00,
                           0x00, 0x0c, 0x00, 0x02, 0x00, 0x00, 0x00,
                           0x00, 0x00, 0x01, 0x00, 0x00, 0x00};
  std::vector<uint64_t> values;
  ForEachAttr(bytes, [&](const NlAttr& a) { values.push_back(*a.Uint()); });
  EXPECT_EQ(values, (std::vector<uint64_t>{5, uint64_t{1} << 32}));
}

TEST(NetlinkAttrTest, ImpossibleLengthStopsTheWalk) {
  const uint8_t too_long[] = {0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
                              0x40, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00};
  int count = 0;
  EXPECT_FALSE(ForEachAttr(too_long, [&](const NlAttr&) { ++count; }));
  EXPECT_EQ(count, 1);
  const uint8_t too_short[] = {0x02, 0x00, 0x01, 0x00};
  EXPECT_FALSE(ForEachAttr(too_short, [&](const NlAttr&) { ++count; }));
  EXPECT_EQ(count, 1);
}

TEST(NetlinkAttrTest, StringWithoutNulIsBounded) {
  const uint8_t bytes[] = {0x08, 0x00, 0x01, 0x00, 'e', 't', 'h', '0'};
  std::string s;
  ForEachAttr(bytes, [&](const NlAttr& a) { s = a.Str(); });
  EXPECT_EQ(s, "eth0");
}

TEST(NetlinkAttrTest, FewTrailingBytesAreIgnored) {
  const uint8_t bytes[] = {0x04, 0x00, 0x01, 0x00, 0xaa, 0xbb};
  int count = 0;
  EXPECT_TRUE(ForEachAttr(bytes, [&](const NlAttr& a) {
    ++count;
    EXPECT_TRUE(a.payload.empty());
  }));
  EXPECT_EQ(count, 1);
}

}  // namespace
}  // namespace devmem
