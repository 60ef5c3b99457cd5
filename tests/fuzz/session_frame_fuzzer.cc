// Fuzzes the session-socket frame decoder (proto/devmem/v1/frame.h), which
// parses whatever a client writes on session.sock. The input is one received
// frame. It is decoded as is, and once more with its length field set to the
// input's real payload size, so mutations reach the protobuf payload instead
// of dying at the length check. Every frame that decodes must survive
// EncodeFrame -> DecodeFrame unchanged, and re-encoding must be stable.
// Seeds: one valid frame per body type, written by seed_gen.

#include <cstdint>
#include <cstring>
#include <string>

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/devmem/v1/frame.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

void RoundTrip(absl::string_view bytes) {
  absl::StatusOr<devmem::v1::SessionFrame> frame = devmem::DecodeFrame(bytes);
  if (!frame.ok()) return;
  FUZZ_CHECK(frame->body_case() != devmem::v1::SessionFrame::BODY_NOT_SET);
  absl::StatusOr<std::string> encoded = devmem::EncodeFrame(*frame);
  if (!encoded.ok()) {
    // The one allowed refusal: re-serializing can grow a frame (a negative
    // int32 sent as a 5-byte varint is written back as 10 bytes), so a frame
    // near the limit may not fit again.
    FUZZ_CHECK(frame->ByteSizeLong() + devmem::kFrameHeaderBytes >
               devmem::kMaxFrameBytes);
    return;
  }
  FUZZ_CHECK(encoded->size() <= devmem::kMaxFrameBytes);
  absl::StatusOr<devmem::v1::SessionFrame> again =
      devmem::DecodeFrame(*encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(
      google::protobuf::util::MessageDifferencer::Equals(*frame, *again));
  absl::StatusOr<std::string> reencoded = devmem::EncodeFrame(*again);
  FUZZ_CHECK(reencoded.ok());
  FUZZ_CHECK(*reencoded == *encoded);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // Proto3 strings with invalid UTF-8 fail to parse, and protobuf logs each
  // one; the refusal is what is being tested, the log is noise.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  RoundTrip(bytes);
  if (size >= devmem::kFrameHeaderBytes) {
    std::string fixed(bytes);
    const uint32_t len =
        static_cast<uint32_t>(size - devmem::kFrameHeaderBytes);
    for (int i = 0; i < 4; ++i) {
      fixed[4 + i] = static_cast<char>((len >> (8 * i)) & 0xff);
    }
    if (fixed != bytes) RoundTrip(fixed);
  }
  return 0;
}
