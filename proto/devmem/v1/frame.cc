#include "proto/devmem/v1/frame.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace devmem {

absl::StatusOr<std::string> EncodeFrame(const devmem::v1::SessionFrame& frame) {
  if (frame.body_case() == devmem::v1::SessionFrame::BODY_NOT_SET) {
    return absl::InvalidArgumentError("session frame has no body set");
  }
  std::string payload;
  if (!frame.SerializeToString(&payload)) {
    return absl::InternalError("cannot serialize session frame");
  }
  if (payload.size() + kFrameHeaderBytes > kMaxFrameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("session frame of ", payload.size() + kFrameHeaderBytes,
                     " bytes exceeds the ", kMaxFrameBytes, "-byte limit"));
  }
  std::string out(kFrameHeaderBytes, '\0');
  std::memcpy(out.data(), kFrameMagic, sizeof(kFrameMagic));
  const uint32_t len = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) {
    out[4 + i] = static_cast<char>((len >> (8 * i)) & 0xff);
  }
  out += payload;
  return out;
}

absl::StatusOr<devmem::v1::SessionFrame> DecodeFrame(absl::string_view bytes) {
  if (bytes.size() < kFrameHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncated frame: ", bytes.size(),
                     " bytes, the header alone is ", kFrameHeaderBytes));
  }
  if (bytes.size() > kMaxFrameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame of ", bytes.size(), " bytes exceeds the ",
                     kMaxFrameBytes, "-byte limit"));
  }
  if (std::memcmp(bytes.data(), kFrameMagic, sizeof(kFrameMagic)) != 0) {
    return absl::InvalidArgumentError("bad frame magic (expected \"DMv1\")");
  }
  uint32_t len = 0;
  for (int i = 0; i < 4; ++i) {
    len |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[4 + i]))
           << (8 * i);
  }
  const size_t got = bytes.size() - kFrameHeaderBytes;
  if (len != got) {
    return absl::InvalidArgumentError(absl::StrCat("frame length field says ",
                                                   len, " payload bytes but ",
                                                   got, " arrived"));
  }
  devmem::v1::SessionFrame frame;
  if (!frame.ParseFromArray(bytes.data() + kFrameHeaderBytes,
                            static_cast<int>(got))) {
    return absl::InvalidArgumentError("frame payload is not a SessionFrame");
  }
  if (frame.body_case() == devmem::v1::SessionFrame::BODY_NOT_SET) {
    return absl::InvalidArgumentError("frame has no body set");
  }
  return frame;
}

}  // namespace devmem
