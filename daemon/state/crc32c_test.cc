#include "daemon/state/crc32c.h"

#include <cstdint>
#include <random>
#include <string>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace devmem {
namespace {

// Bit-at-a-time reference, independent of the table code under test.
uint32_t BitwiseCrc32c(const std::string& data) {
  uint32_t crc = 0xFFFFFFFF;
  for (unsigned char c : data) {
    crc ^= c;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
    }
  }
  return ~crc;
}

std::string Bytes(int n, int (*byte_at)(int)) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(byte_at(i)));
  return s;
}

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c("a"), 0xC1D04330u);
  EXPECT_EQ(Crc32c("The quick brown fox jumps over the lazy dog"), 0x22620404u);
  // RFC 3720 (iSCSI), appendix B.4.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(Bytes(32, [](int i) { return i; })), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(Bytes(32, [](int i) { return 31 - i; })), 0x113FDB5Cu);
}

TEST(Crc32cTest, IncrementalEqualsOneShotAtEverySplit) {
  const std::string data =
      "devmemd journal record payload that spans several 8-byte blocks";
  const uint32_t whole = Crc32c(data);
  for (size_t split = 0; split <= data.size(); ++split) {
    const absl::string_view view(data);
    EXPECT_EQ(Crc32c(view.substr(split), Crc32c(view.substr(0, split))), whole)
        << "split at " << split;
  }
}

TEST(Crc32cTest, MatchesBitwiseReferenceOnRandomData) {
  std::mt19937 rng(20240611);
  for (size_t len : {1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099}) {
    std::string data(len, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    // Unaligned starts exercise the 8-byte loop from every alignment.
    for (size_t off = 0; off < 8 && off < len; ++off) {
      const absl::string_view sub = absl::string_view(data).substr(off);
      EXPECT_EQ(Crc32c(sub), BitwiseCrc32c(std::string(sub)))
          << "len " << len << " off " << off;
    }
  }
}

}  // namespace
}  // namespace devmem
