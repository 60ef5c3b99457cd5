#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/devmem/v1/session.pb.h"

namespace devmem {

// Session-socket framing (docs/PROTOCOL.md section 2):
//
//   0               4               8
//   +---+---+---+---+---+---+---+---+----------------------+
//   | 'D' 'M' 'v' '1' | length u32 LE |  SessionFrame bytes  |
//   +---+---+---+---+---+---+---+---+----------------------+
inline constexpr char kFrameMagic[4] = {'D', 'M', 'v', '1'};
inline constexpr size_t kFrameHeaderBytes = 8;
inline constexpr size_t kMaxFrameBytes = 64 * 1024;
inline constexpr uint32_t kProtocolVersion = 1;

// Serializes `frame` with its header. INVALID_ARGUMENT if it has no body or the
// result would exceed kMaxFrameBytes.
absl::StatusOr<std::string> EncodeFrame(const devmem::v1::SessionFrame& frame);

// Parses one whole received frame. INVALID_ARGUMENT, saying what was wrong, for
// a short header, bad magic, length mismatch (truncated or padded), oversize
// frame, unparsable payload, or an empty body.
absl::StatusOr<devmem::v1::SessionFrame> DecodeFrame(absl::string_view bytes);

}  // namespace devmem
