#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace devmem {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI,
// ext4 and SCTP. Table-driven (slicing-by-8); our own code because Debian's
// Abseil 20220623 has no absl/crc.
//
// `crc` is a previous result to continue from, so
//   Crc32c(b, Crc32c(a)) == Crc32c(a + b).
// Crc32c("123456789") == 0xE3069283; Crc32c("") == 0.
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);

}  // namespace devmem
