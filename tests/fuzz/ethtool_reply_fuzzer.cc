// Fuzzes the ethtool generic-netlink reply parsers (kernel/ethtool_msg.h).
// The input is one netlink message as a socket would hand it over; every
// parser sees it, and its genl command byte (offset 16) decides which one can
// accept it. Seeds: real kernel replies (kernel/testdata) and the unit tests'
// hand-encoded ones.

#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/types/span.h"
#include "kernel/ethtool_msg.h"
#include "tests/fuzz/fuzz_check.h"

namespace devmem {
namespace {

// Which parsers accepted `msg`, one bit each.
unsigned ParseAll(absl::Span<const uint8_t> msg) {
  unsigned ok = 0;
  if (absl::StatusOr<ChannelsInfo> r = ParseChannelsReply(msg); r.ok()) {
    ok |= 1u << 0;
  }
  if (absl::StatusOr<RingsInfo> r = ParseRingsReply(msg); r.ok()) {
    ok |= 1u << 1;
  }
  if (absl::StatusOr<FeaturesInfo> r = ParseFeaturesReply(msg); r.ok()) {
    ok |= 1u << 2;
    // The count covers named bits in the HW bitset; each takes at least one
    // 4-byte attribute header.
    FUZZ_CHECK(r->feature_count <= msg.size() / 4);
  }
  if (absl::StatusOr<RssInfo> r = ParseRssReply(msg); r.ok()) {
    ok |= 1u << 3;
    FUZZ_CHECK(r->indir.size() * sizeof(uint32_t) + r->hkey.size() <=
               msg.size());
  }
  if (absl::StatusOr<uint32_t> r = ParseRssCreateActReply(msg); r.ok()) {
    ok |= 1u << 4;
    FUZZ_CHECK(*r != 0);
  }
  return ok;
}

}  // namespace
}  // namespace devmem

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> msg(data, size);
  const unsigned ok = devmem::ParseAll(msg);
  // Each parser wants its own reply command, so at most one accepts.
  FUZZ_CHECK((ok & (ok - 1)) == 0);
  if (size < NLMSG_HDRLEN) {
    FUZZ_CHECK(ok == 0);
    return 0;
  }
  // Only the message's own nlmsg_len bytes may be read: parse a heap copy cut
  // to exactly that length (ASan flags any read past it); the bytes after it
  // must not change which parser accepts.
  uint32_t len;
  std::memcpy(&len, data, sizeof(len));
  if (len <= size) {
    const std::vector<uint8_t> exact(data, data + len);
    FUZZ_CHECK(devmem::ParseAll(exact) == ok);
  } else {
    FUZZ_CHECK(ok == 0);
  }
  return 0;
}
