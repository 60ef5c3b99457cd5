#include "proto/devmem/v1/frame.h"

#include <string>

#include "gtest/gtest.h"

namespace devmem {
namespace {

TEST(FrameTest, EncodesHeaderByteForByte) {
  devmem::v1::SessionFrame f;
  f.mutable_ping()->set_nonce(1);
  auto bytes = EncodeFrame(f);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // Payload: field 7 (ping), length 2, { field 1 varint 1 }.
  const std::string want("DMv1\x04\x00\x00\x00\x3a\x02\x08\x01", 12);
  EXPECT_EQ(*bytes, want);
}

TEST(FrameTest, RoundTrips) {
  devmem::v1::SessionFrame f;
  f.mutable_redeem()->set_ticket("00112233445566778899aabbccddeeff");
  auto bytes = EncodeFrame(f);
  ASSERT_TRUE(bytes.ok());
  auto back = DecodeFrame(*bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->redeem().ticket(), f.redeem().ticket());
}

TEST(FrameTest, RejectsEmptyBody) {
  devmem::v1::SessionFrame f;
  EXPECT_FALSE(EncodeFrame(f).ok());
  EXPECT_FALSE(DecodeFrame(std::string("DMv1\0\0\0\0", 8)).ok());
}

TEST(FrameTest, RejectsMalformed) {
  devmem::v1::SessionFrame f;
  f.mutable_ping()->set_nonce(7);
  std::string good = *EncodeFrame(f);
  EXPECT_FALSE(DecodeFrame(good.substr(0, 5)).ok());  // short header
  EXPECT_FALSE(DecodeFrame(good.substr(0, good.size() - 1)).ok());  // truncated
  EXPECT_FALSE(DecodeFrame(good + "x").ok());                       // padded
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  EXPECT_FALSE(DecodeFrame(bad_magic).ok());
  std::string garbage = std::string("DMv1\x03\x00\x00\x00", 8) + "\xff\xff\xff";
  auto st = DecodeFrame(garbage);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(DecodeFrame(std::string(kMaxFrameBytes + 1, 'D')).ok());
}

}  // namespace
}  // namespace devmem
