#include "kernel/netlink_error.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

using ::testing::HasSubstr;

// Little helpers to write messages in the order the kernel lays them out.
void U16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(v & 0xff);
  b.push_back(v >> 8);
}
void U32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back((v >> (8 * i)) & 0xff);
}
void Nlmsghdr(std::vector<uint8_t>& b, uint32_t len, uint16_t type,
              uint16_t flags, uint32_t seq) {
  U32(b, len);
  U16(b, type);
  U16(b, flags);
  U32(b, seq);
  U32(b, 0);
}
void StrAttr(std::vector<uint8_t>& b, uint16_t type, const std::string& s) {
  U16(b, 4 + s.size() + 1);
  U16(b, type);
  b.insert(b.end(), s.begin(), s.end());
  b.push_back(0);
  while (b.size() % 4) b.push_back(0);
}
void U32Attr(std::vector<uint8_t>& b, uint16_t type, uint32_t v) {
  U16(b, 8);
  U16(b, type);
  U32(b, v);
}
void FixLen(std::vector<uint8_t>& b) {
  const uint32_t len = b.size();
  std::memcpy(b.data(), &len, 4);
}

TEST(NetlinkErrorTest, CappedErrorWithExtack) {
  std::vector<uint8_t> b;
  Nlmsghdr(b, 0, NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 5);
  U32(b, static_cast<uint32_t>(-ENODEV));
  Nlmsghdr(b, 32, 21, NLM_F_REQUEST | NLM_F_ACK, 5);  // the request's header
  StrAttr(b, NLMSGERR_ATTR_MSG, "no device matches ifindex");
  U32Attr(b, NLMSGERR_ATTR_OFFS, 24);
  FixLen(b);
  ASSERT_EQ(b.size(), 76u);

  absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(b);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->error, ENODEV);
  EXPECT_EQ(ack->message, "no device matches ifindex");
  EXPECT_EQ(ack->bad_offset, 24u);

  absl::Status s = NetlinkAckStatus(*ack, "ethtool channels-get ifindex 99");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StatusErrno(s), ENODEV);
  EXPECT_EQ(StatusExtack(s), "no device matches ifindex");
  EXPECT_THAT(s.message(), HasSubstr("ethtool channels-get ifindex 99"));
}

TEST(NetlinkErrorTest, UncappedErrorSkipsTheEchoedRequest) {
  std::vector<uint8_t> b;
  Nlmsghdr(b, 0, NLMSG_ERROR, NLM_F_ACK_TLVS, 9);
  U32(b, static_cast<uint32_t>(-EINVAL));
  // Echoed request: 16-byte header + 4-byte genl header + a 6-byte attribute
  // that looks like an extack message, so a wrong offset would be noticed.
  Nlmsghdr(b, 26, 21, NLM_F_REQUEST, 9);
  b.insert(b.end(), {0x0b, 0x01, 0x00, 0x00});
  b.insert(b.end(), {0x06, 0x00, 0x01, 0x00, 'x', 0x00, 0x00, 0x00});
  StrAttr(b, NLMSGERR_ATTR_MSG, "real text");
  FixLen(b);

  absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(b);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->error, EINVAL);
  EXPECT_EQ(ack->message, "real text");
}

TEST(NetlinkErrorTest, PlainAck) {
  std::vector<uint8_t> b;
  Nlmsghdr(b, 0, NLMSG_ERROR, NLM_F_CAPPED, 3);
  U32(b, 0);
  Nlmsghdr(b, 32, 21, NLM_F_REQUEST | NLM_F_ACK, 3);
  FixLen(b);
  absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(b);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->error, 0);
  EXPECT_TRUE(ack->message.empty());
}

TEST(NetlinkErrorTest, MissingAttributeWithoutTextGetsOne) {
  std::vector<uint8_t> b;
  Nlmsghdr(b, 0, NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 3);
  U32(b, static_cast<uint32_t>(-EINVAL));
  Nlmsghdr(b, 20, 30, NLM_F_REQUEST | NLM_F_ACK, 3);
  U32Attr(b, NLMSGERR_ATTR_MISS_TYPE, 1);
  FixLen(b);
  absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(b);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->missing_attr_type, 1u);
  EXPECT_EQ(ack->message, "missing required attribute 1");
}

TEST(NetlinkErrorTest, DoneWithErrorAndExtack) {
  std::vector<uint8_t> b;
  Nlmsghdr(b, 0, NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS, 4);
  U32(b, static_cast<uint32_t>(-EBUSY));
  StrAttr(b, NLMSGERR_ATTR_MSG, "dump interrupted");
  FixLen(b);
  absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(b);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->error, EBUSY);
  EXPECT_EQ(ack->message, "dump interrupted");
}

// Found by tests/fuzz (fuzz_netlink_ack): INT32_MIN was negated (undefined
// behaviour) and came out as a negative "errno".
TEST(NetlinkErrorTest, RejectsErrorCodesOutsideTheErrnoRange) {
  for (const uint16_t type : {NLMSG_ERROR, NLMSG_DONE}) {
    for (const uint32_t raw : {0x80000000u, 0x7fffffffu, 0xfffff000u}) {
      std::vector<uint8_t> b;
      Nlmsghdr(b, 0, type, NLM_F_CAPPED, 2);
      U32(b, raw);
      if (type == NLMSG_ERROR) Nlmsghdr(b, 32, 21, NLM_F_REQUEST, 2);
      FixLen(b);
      absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(b);
      EXPECT_EQ(ack.status().code(), absl::StatusCode::kInvalidArgument)
          << "type " << type << " error " << raw;
      EXPECT_THAT(ack.status().message(), HasSubstr("is not an errno"));
    }
  }
  // -MAX_ERRNO is still an errno.
  std::vector<uint8_t> b;
  Nlmsghdr(b, 0, NLMSG_DONE, NLM_F_MULTI, 2);
  U32(b, static_cast<uint32_t>(-4095));
  FixLen(b);
  absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(b);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->error, 4095);
}

TEST(NetlinkErrorTest, RejectsOtherTypesAndTruncation) {
  std::vector<uint8_t> b;
  Nlmsghdr(b, 20, 21, 0, 1);
  U32(b, 0);
  EXPECT_EQ(ParseNetlinkAck(b).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<uint8_t> err;
  Nlmsghdr(err, 24, NLMSG_ERROR, 0, 1);  // shorter than nlmsgerr
  U32(err, 0);
  EXPECT_FALSE(ParseNetlinkAck(err).ok());
  EXPECT_FALSE(ParseNetlinkAck(absl::MakeConstSpan(err).first(8)).ok());
}

}  // namespace
}  // namespace devmem
