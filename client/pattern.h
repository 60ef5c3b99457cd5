#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace devmem {

// The deterministic byte stream that `devmemctl connect --pattern` sends and
// `devmemctl listen --expect_pattern` checks. The (offset >> 12) term makes the
// sequence differ from one 4 KiB block to the next, so a dropped, duplicated or
// reordered page shows up as a mismatch instead of repeating identically.
inline uint8_t PatternByte(uint64_t offset) {
  return static_cast<uint8_t>((offset * 131 + (offset >> 12)) & 0xff);
}

// The pattern repeats every 1 MiB: shifting i by 2^20 adds 2^20 * 131 (a
// multiple of 256) and 2^8 to the (i >> 12) term, both 0 mod 256. Senders and
// checkers can therefore precompute one period and use memcpy/memcmp.
inline constexpr size_t kPatternPeriod = size_t{1} << 20;

// Writes the pattern bytes for stream offsets [offset, offset + out.size()).
inline void FillPattern(uint64_t offset, absl::Span<char> out) {
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(PatternByte(offset + i));
  }
}

// Index within `data` of the first byte that differs from the pattern, where
// data[0] sits at stream offset `offset`; -1 if every byte matches.
inline int64_t FirstPatternMismatch(uint64_t offset,
                                    absl::Span<const char> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    if (static_cast<uint8_t>(data[i]) != PatternByte(offset + i)) {
      return static_cast<int64_t>(i);
    }
  }
  return -1;
}

}  // namespace devmem
