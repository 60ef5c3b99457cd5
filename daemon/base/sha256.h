#pragma once
// SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), for reservation tokens:
// a token is an HMAC of its reservation's id under the host's key, and the
// journal keeps only its hash, never the token. Not constant-time with respect
// to the message length; tokens have a fixed length. Stateless and thread-safe.

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace devmem {

// The 32-byte digest of `data`.
std::array<uint8_t, 32> Sha256(absl::string_view data);

// The digest as 64 lowercase hex digits (what sha256sum prints).
std::string Sha256Hex(absl::string_view data);

// HMAC-SHA-256 (RFC 2104) of `message` under `key`, as 64 hex digits.
std::string HmacSha256Hex(absl::string_view key, absl::string_view message);

}  // namespace devmem
