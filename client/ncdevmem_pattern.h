#pragma once

// The test pattern of the kernel's ncdevmem (`-v N`): the bytes 1, 2, ...,
// N-1 and '\n', repeated, continued across fragments and calls. A sender
// can be as plain as `yes $(printf '\1\2\3\4\5\6') | nc HOST PORT` for
// N = 7. ncdevmem gives up after 20 mismatches; so does this checker.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/types/span.h"

namespace devmem {

class NcdevmemPattern {
 public:
  static constexpr uint64_t kMaxMismatches = 20;

  // 2 <= N <= 256 (N = 2 is "\x01\n"); others are clamped.
  explicit NcdevmemPattern(uint32_t n) : n_(n < 2 ? 2 : n > 256 ? 256 : n) {
    // Whole periods up to 4 KiB or so, so that Check compares with memcmp.
    const size_t periods = (4096 + n_ - 1) / n_;
    periodic_.resize(periods * n_);
    Fill(0, absl::MakeSpan(periodic_));
  }

  uint8_t ByteAt(uint64_t offset) const {
    const uint64_t k = offset % n_;
    return k + 1 == n_ ? '\n' : static_cast<uint8_t>(k + 1);
  }

  // Checks the next `data.size()` bytes of the stream; false once more
  // than kMaxMismatches bytes have differed.
  bool Check(absl::Span<const char> data) {
    size_t i = 0;
    while (i < data.size()) {
      // periodic_[phase..] holds the expected bytes from here on.
      const size_t phase = static_cast<size_t>((offset_ + i) % n_);
      const size_t n = std::min(data.size() - i, periodic_.size() - phase);
      if (std::memcmp(data.data() + i, periodic_.data() + phase, n) != 0) {
        CountMismatches(data.subspan(i, n), offset_ + i);
      }
      i += n;
    }
    offset_ += data.size();
    return mismatches_ <= kMaxMismatches;
  }

  // Fills `out` with the bytes at stream offsets [offset, offset + size).
  void Fill(uint64_t offset, absl::Span<char> out) const {
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = static_cast<char>(ByteAt(offset + i));
  }

  uint64_t checked() const { return offset_; }
  uint64_t mismatches() const { return mismatches_; }
  uint64_t first_mismatch() const { return first_mismatch_; }

 private:
  void CountMismatches(absl::Span<const char> data, uint64_t at) {
    for (size_t i = 0; i < data.size(); ++i) {
      if (static_cast<uint8_t>(data[i]) != ByteAt(at + i)) {
        if (mismatches_ == 0) first_mismatch_ = at + i;
        ++mismatches_;
      }
    }
  }

  uint32_t n_;
  std::string periodic_;
  uint64_t offset_ = 0;
  uint64_t mismatches_ = 0;
  uint64_t first_mismatch_ = 0;
};

}  // namespace devmem
