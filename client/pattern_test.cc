#include "client/pattern.h"

#include <string>

#include "gtest/gtest.h"

namespace devmem {
namespace {

TEST(PatternTest, KnownValues) {
  EXPECT_EQ(PatternByte(0), 0);
  EXPECT_EQ(PatternByte(1), 131);
  EXPECT_EQ(PatternByte(2), 6);  // 262 & 0xff
  // 4096 * 131 is a multiple of 256, so only the (i >> 12) term is left.
  EXPECT_EQ(PatternByte(4096), 1);
  EXPECT_EQ(PatternByte(2 * 4096), 2);
}

TEST(PatternTest, BlocksDiffer) {
  // Same position in consecutive 4 KiB blocks must not repeat.
  EXPECT_NE(PatternByte(10), PatternByte(4096 + 10));
}

TEST(PatternTest, RepeatsEveryPeriod) {
  for (uint64_t i : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{4096},
                     uint64_t{777777}, kPatternPeriod - 1}) {
    EXPECT_EQ(PatternByte(i), PatternByte(i + kPatternPeriod)) << i;
    EXPECT_EQ(PatternByte(i), PatternByte(i + 5 * kPatternPeriod)) << i;
  }
  // ... and not sooner at the 4 KiB-block scale.
  EXPECT_NE(PatternByte(0), PatternByte(kPatternPeriod / 2));
}

TEST(PatternTest, FillThenCheckAtAnyOffset) {
  std::string buf(10000, '\0');
  FillPattern(12345, absl::MakeSpan(buf));
  EXPECT_EQ(FirstPatternMismatch(12345, buf), -1);
  // The same bytes checked at the wrong stream offset do not match.
  EXPECT_EQ(FirstPatternMismatch(12346, buf), 0);
  buf[777] ^= 1;
  EXPECT_EQ(FirstPatternMismatch(12345, buf), 777);
}

TEST(PatternTest, ChunkedFillEqualsWholeFill) {
  std::string whole(9000, '\0');
  FillPattern(0, absl::MakeSpan(whole));
  std::string chunks(9000, '\0');
  for (size_t off = 0; off < chunks.size(); off += 1000) {
    FillPattern(off, absl::MakeSpan(chunks).subspan(off, 1000));
  }
  EXPECT_EQ(whole, chunks);
}

}  // namespace
}  // namespace devmem
