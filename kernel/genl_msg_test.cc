#include "kernel/genl_msg.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

using ::testing::ElementsAreArray;

std::vector<uint8_t> Bytes(const GenlMsg& msg) {
  return std::vector<uint8_t>(msg.bytes().begin(), msg.bytes().end());
}

TEST(GenlMsgTest, HeadersOnly) {
  GenlMsg msg(0x1d, /*cmd=*/13, /*version=*/1, NLM_F_REQUEST | NLM_F_ACK);
  EXPECT_THAT(Bytes(msg),
              ElementsAreArray<uint8_t>({0x14, 0x00, 0x00, 0x00,  // len 20
                                         0x1d, 0x00, 0x05, 0x00,  // type, flags
                                         0x00, 0x00, 0x00, 0x00,  // seq
                                         0x00, 0x00, 0x00, 0x00,  // pid
                                         0x0d, 0x01, 0x00, 0x00}));
  EXPECT_EQ(msg.cmd(), 13);
}

TEST(GenlMsgTest, TypedPutsArePaddedLittleEndian) {
  GenlMsg msg(0x10, 3, 1, NLM_F_REQUEST);
  msg.PutU8(1, 0xab);
  msg.PutU16(2, 0x1234);
  msg.PutU64(3, 0x0102030405060708);
  msg.PutFlag(4);
  const uint8_t blob[] = {9, 8, 7, 6, 5};
  msg.PutBinary(5, blob);
  EXPECT_THAT(
      Bytes(msg),
      ElementsAreArray<uint8_t>({
          0x40, 0x00, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,  // len 64
          0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
          0x03, 0x01, 0x00, 0x00,                          //
          0x05, 0x00, 0x01, 0x00, 0xab, 0x00, 0x00, 0x00,  // u8 + 3 pad
          0x06, 0x00, 0x02, 0x00, 0x34, 0x12, 0x00, 0x00,  // u16 + 2 pad
          0x0c, 0x00, 0x03, 0x00, 0x08, 0x07, 0x06, 0x05,  // u64
          0x04, 0x03, 0x02, 0x01,                          //
          0x04, 0x00, 0x04, 0x00,                          // flag
          0x09, 0x00, 0x05, 0x00, 9,    8,    7,    6,
          5,    0,    0,    0,  // binary + 3 pad
      }));
}

TEST(GenlMsgTest, NestedNestsCarryNlaFNested) {
  GenlMsg msg(0x1d, 13, 1, NLM_F_REQUEST | NLM_F_ACK);
  msg.PutU32(1, 4);                   // NETDEV_A_DMABUF_IFINDEX
  const size_t q = msg.BeginNest(2);  // NETDEV_A_DMABUF_QUEUES
  msg.PutU32(1, 3);                   // NETDEV_A_QUEUE_ID
  msg.PutU32(3, 0);                   // NETDEV_A_QUEUE_TYPE = RX
  msg.EndNest(q);
  EXPECT_THAT(Bytes(msg),
              ElementsAreArray<uint8_t>({
                  0x30, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x05, 0x00,  // len 48
                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
                  0x0d, 0x01, 0x00, 0x00,                          //
                  0x08, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00,  //
                  0x14, 0x00, 0x02, 0x80,                          // nest 20
                  0x08, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00,  //
                  0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,  //
              }));
}

TEST(GenlMsgTest, CopiesAreIndependent) {
  GenlMsg a(0x10, 3, 1, NLM_F_REQUEST);
  a.PutU32(1, 1);
  GenlMsg b = a;
  b.set_seq(77);
  b.PutU32(2, 2);
  EXPECT_EQ(a.seq(), 0u);
  EXPECT_EQ(a.bytes().size(), 28u);
  EXPECT_EQ(b.bytes().size(), 36u);
}

TEST(GenlMsgTest, OverflowIsStickyAndReported) {
  GenlMsg msg(0x10, 3, 1, NLM_F_REQUEST);
  const std::string big(1000, 'x');
  for (int i = 0; i < 10; ++i) msg.PutStrz(1, big);
  EXPECT_TRUE(msg.overflowed());
  EXPECT_LE(msg.bytes().size(), GenlMsg::kMaxBytes);
  const size_t size = msg.bytes().size();
  msg.PutU8(2, 1);
  EXPECT_EQ(msg.bytes().size(), size);
}

}  // namespace
}  // namespace devmem
