// Prints the raw ethtool netlink replies (CHANNELS_GET, RINGS_GET,
// FEATURES_GET, RSS_GET) for one interface as C++ byte arrays, for
// kernel/testdata/*.inc; a refused request becomes a comment with the error.
// Read-only: it sends GETs only. Usage: ethtool_capture IFNAME PREFIX
// (run it inside the namespace that has the interface, e.g. `ip netns exec`).

#include <net/if.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernel/ethtool_msg.h"
#include "kernel/ethtool_netlink.h"

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
  auto ethtool = devmem::EthtoolNetlink::Open();
  if (!ethtool.ok()) {
    std::fprintf(stderr, "%s\n", ethtool.status().ToString().c_str());
    return 1;
  }
  const uint16_t family = (*ethtool)->family_id();
  const devmem::EthtoolDev dev = devmem::EthtoolDev::ByIndex(ifindex);
  struct Request {
    const char* suffix;
    devmem::GenlMsg msg;
  } requests[] = {
      {"ChannelsReply", devmem::BuildChannelsGet(family, dev)},
      {"RingsReply", devmem::BuildRingsGet(family, dev)},
      {"FeaturesReply", devmem::BuildFeaturesGet(family, dev)},
      // Main table only; most virtual devices refuse it (no get_rxfh).
      {"RssReply", devmem::BuildRssGet(family, dev, /*context=*/0)},
  };
  std::printf(
      "// Captured by kernel/tools/ethtool_capture %s %s (ifindex %u,"
      " ethtool family id %u).\n\n",
      argv[1], argv[2], ifindex, family);
  for (const Request& r : requests) {
    absl::Status s = (*ethtool)->Transact(
        r.msg, r.suffix, [&](absl::Span<const uint8_t> reply) {
          PrintArray(absl::StrCat(argv[2], r.suffix), reply);
          return absl::OkStatus();
        });
    if (!s.ok()) std::printf("// %s: %s\n\n", r.suffix, s.ToString().c_str());
  }
  return 0;
}
