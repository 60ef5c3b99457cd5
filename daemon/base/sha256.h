#pragma once
// SHA-256 (FIPS 180-4), for the journal's record of reservation tokens: the
// journal keeps the hash, never the token. Not constant-time with respect to
// the message length; tokens have a fixed length. Stateless and thread-safe.

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace devmem {

// The 32-byte digest of `data`.
std::array<uint8_t, 32> Sha256(absl::string_view data);

// The digest as 64 lowercase hex digits (what sha256sum prints).
std::string Sha256Hex(absl::string_view data);

}  // namespace devmem
