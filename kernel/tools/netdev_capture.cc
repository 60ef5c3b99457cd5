// Prints the raw netdev napi-get and qstats-get dump replies for one
// interface as C++ byte arrays, for kernel/testdata/netdev_replies.inc.
// Usage: netdev_capture IFNAME PREFIX (run it inside the namespace that has
// the interface, e.g. `ip netns exec`).

#include <net/if.h>
#include <netlink/msg.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernel/genl_family.h"
#include "kernel/genl_msg.h"
#include "kernel/libnl_socket.h"
#include "kernel/netdev_genl.h"
#include "kernel/uapi_compat.h"

namespace {

void PrintArray(const std::string& name, absl::Span<const uint8_t> bytes) {
  std::printf("alignas(4) constexpr uint8_t %s[] = {", name.c_str());
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i % 12 == 0) std::printf("\n   ");
    std::printf(" 0x%02x,", bytes[i]);
  }
  std::printf("\n};\n\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IFNAME PREFIX\n", argv[0]);
    return 2;
  }
  const uint32_t ifindex = if_nametoindex(argv[1]);
  if (ifindex == 0) {
    std::perror(argv[1]);
    return 1;
  }
  auto sock = devmem::LibnlGenlSocket::Open();
  if (!sock.ok()) {
    std::fprintf(stderr, "%s\n", sock.status().ToString().c_str());
    return 1;
  }
  auto family = devmem::ResolveGenlFamily(**sock, NETDEV_FAMILY_NAME);
  if (!family.ok()) {
    std::fprintf(stderr, "%s\n", family.status().ToString().c_str());
    return 1;
  }
  struct Request {
    const char* suffix;
    devmem::GenlMsg msg;
  } requests[] = {
      {"NapiReply", devmem::BuildNetdevNapiGetDump(family->id, ifindex)},
      {"QstatsDevReply",
       devmem::BuildNetdevQstatsGetDump(family->id, ifindex, false)},
      {"QstatsQueueReply",
       devmem::BuildNetdevQstatsGetDump(family->id, ifindex, true)},
  };
  std::printf(
      "// Captured by kernel/tools/netdev_capture %s %s (ifindex %u,"
      " netdev family id %u).\n\n",
      argv[1], argv[2], ifindex, family->id);
  for (const Request& r : requests) {
    // nlmsg_convert() only copies from the header.
    devmem::LibnlGenlSocket::MsgPtr msg(
        nlmsg_convert(reinterpret_cast<nlmsghdr*>(
            const_cast<uint8_t*>(r.msg.bytes().data()))),
        &nlmsg_free);
    int n = 0;
    absl::Status s = (*sock)->Transact(
        msg.get(), r.suffix, [&](absl::Span<const uint8_t> reply) {
          PrintArray(absl::StrCat(argv[2], r.suffix, n), reply);
          ++n;
          return absl::OkStatus();
        });
    if (!s.ok()) std::printf("// %s: %s\n\n", r.suffix, s.ToString().c_str());
  }
  return 0;
}
