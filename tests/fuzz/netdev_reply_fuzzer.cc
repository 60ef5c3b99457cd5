// Fuzzes the netdev generic-netlink reply parsers (kernel/netdev_genl.h) and
// the CTRL_CMD_GETFAMILY reply parser (kernel/genl_family.h). The input is one
// netlink message; every parser sees it, the bind-reply parser with the
// message's own command (it accepts whatever the request's command was).
// DescribeBindAttrAtOffset also walks it as a request, at the offset held in
// nlmsg_seq. Seeds: real kernel replies (kernel/testdata, plus family replies
// captured by seed_gen) and hand-built ones.

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "kernel/genl_family.h"
#include "kernel/netdev_genl.h"
#include "kernel/uapi_compat.h"
#include "tests/fuzz/fuzz_check.h"

namespace devmem {
namespace {

struct Results {
  unsigned ok = 0;  // one bit per parser that accepted the message
  std::string described;
  bool operator==(const Results& o) const {
    return ok == o.ok && described == o.described;
  }
};

Results ParseAll(absl::Span<const uint8_t> msg) {
  Results out;
  if (absl::StatusOr<NetdevDevInfo> r = ParseNetdevDevReply(msg); r.ok()) {
    out.ok |= 1u << 0;
  }
  uint32_t ifindex = 0;
  absl::StatusOr<QueueInfo> queue = ParseNetdevQueueReply(msg, &ifindex);
  if (queue.ok()) out.ok |= 1u << 1;
  // The ifindex out-parameter is optional.
  FUZZ_CHECK(ParseNetdevQueueReply(msg, nullptr).ok() == queue.ok());
  if (absl::StatusOr<NapiInfo> r = ParseNetdevNapiReply(msg); r.ok()) {
    out.ok |= 1u << 2;
  }
  if (absl::StatusOr<QstatsInfo> r = ParseNetdevQstatsReply(msg); r.ok()) {
    out.ok |= 1u << 3;
    FUZZ_CHECK(r->queue_type.has_value() == r->queue_id.has_value());
  }
  if (absl::StatusOr<PagePoolInfo> r = ParseNetdevPagePoolReply(msg); r.ok()) {
    out.ok |= 1u << 6;
    // An accepted reply has at least its ID attribute.
    FUZZ_CHECK(msg.size() >= NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN + 4);
  }
  const uint8_t cmd = msg.size() > NLMSG_HDRLEN ? msg[NLMSG_HDRLEN] : 0;
  if (absl::StatusOr<uint32_t> r = ParseNetdevBindReply(msg, cmd); r.ok()) {
    out.ok |= 1u << 4;
    FUZZ_CHECK(*r != 0);
  }
  if (absl::StatusOr<GenlFamily> r = ParseGenlFamilyReply(msg); r.ok()) {
    out.ok |= 1u << 5;
    FUZZ_CHECK(r->ops.size() <= msg.size() / 4);
    FUZZ_CHECK(r->mcast_groups.size() <= msg.size() / 4);
    for (const GenlOp& op : r->ops) FUZZ_CHECK(r->HasOp(op.id));
  }
  uint32_t offset = 0;
  if (msg.size() >= 12) std::memcpy(&offset, msg.data() + 8, sizeof(offset));
  out.described = DescribeBindAttrAtOffset(msg, offset);
  // Something is named only where an attribute header starts.
  if (!out.described.empty()) {
    FUZZ_CHECK(offset >= NLMSG_HDRLEN + GENL_HDRLEN);
    FUZZ_CHECK(offset + NLA_HDRLEN <= msg.size());
  }
  return out;
}

}  // namespace
}  // namespace devmem

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> msg(data, size);
  const devmem::Results all = devmem::ParseAll(msg);
  if (size < NLMSG_HDRLEN) {
    FUZZ_CHECK(all.ok == 0);
    return 0;
  }
  // The reply parsers may read only nlmsg_len bytes: parse a heap copy cut to
  // exactly that length (ASan flags any read past it). The request walker
  // reads the whole buffer, so it is left out of the comparison.
  uint32_t len;
  std::memcpy(&len, data, sizeof(len));
  if (len <= size) {
    const std::vector<uint8_t> exact(data, data + len);
    FUZZ_CHECK(devmem::ParseAll(exact).ok == all.ok);
  } else {
    FUZZ_CHECK(all.ok == 0);
  }
  return 0;
}
