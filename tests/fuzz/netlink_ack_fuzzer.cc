// Fuzzes ParseNetlinkAck (kernel/netlink_error.h): NLMSG_ERROR and NLMSG_DONE
// messages with extended-ACK TLVs, as the kernel sends them after a request.
// The input is what a receive returned (one message, possibly followed by
// more bytes). Seeds: acks captured from the kernel by seed_gen and built
// ones.

#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/types/span.h"
#include "kernel/netlink_error.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> bytes(data, size);
  const absl::StatusOr<devmem::NetlinkAck> ack = devmem::ParseNetlinkAck(bytes);
  if (!ack.ok()) return 0;
  // error is a positive errno (or 0 for a plain ACK).
  FUZZ_CHECK(ack->error >= 0);
  if (ack->error != 0) {
    FUZZ_CHECK(!devmem::NetlinkAckStatus(*ack, "fuzz").ok());
  }
  // Only the message's nlmsg_len bytes belong to it: a heap copy cut to
  // exactly that length (ASan flags any read past it) parses the same.
  uint32_t len;
  std::memcpy(&len, data, sizeof(len));
  FUZZ_CHECK(len <= size);
  const std::vector<uint8_t> exact(data, data + len);
  const absl::StatusOr<devmem::NetlinkAck> again =
      devmem::ParseNetlinkAck(exact);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->error == ack->error);
  FUZZ_CHECK(again->message == ack->message);
  FUZZ_CHECK(again->bad_offset == ack->bad_offset);
  FUZZ_CHECK(again->missing_attr_type == ack->missing_attr_type);
  return 0;
}
