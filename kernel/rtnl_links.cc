#include "kernel/rtnl_links.h"

#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/route/link.h>

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernel/errno_status.h"
#include "kernel/libnl_socket.h"

namespace devmem {
namespace {

struct CacheDeleter {
  void operator()(nl_cache* cache) const { nl_cache_free(cache); }
};
struct LinkDeleter {
  void operator()(rtnl_link* link) const { rtnl_link_put(link); }
};

std::string FormatMac(nl_addr* addr) {
  if (addr == nullptr) return "";
  const auto* bytes =
      static_cast<const uint8_t*>(nl_addr_get_binary_addr(addr));
  const unsigned len = nl_addr_get_len(addr);
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    absl::StrAppendFormat(&out, "%s%02x", i == 0 ? "" : ":", bytes[i]);
  }
  return out;
}

LinkInfo ToLinkInfo(rtnl_link* link) {
  LinkInfo info;
  if (const char* name = rtnl_link_get_name(link)) info.name = name;
  info.ifindex = static_cast<uint32_t>(rtnl_link_get_ifindex(link));
  // IFLA_INFO_KIND; NULL for physical devices and loopback.
  if (const char* kind = rtnl_link_get_type(link)) info.kind = kind;
  info.mac = FormatMac(rtnl_link_get_addr(link));
  info.mtu = rtnl_link_get_mtu(link);
  info.admin_up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
  char buf[32] = {};
  rtnl_link_operstate2str(rtnl_link_get_operstate(link), buf, sizeof(buf));
  info.oper_state = buf;
  return info;
}

}  // namespace

absl::StatusOr<std::vector<LinkInfo>> ListLinks() {
  absl::StatusOr<NlSockPtr> sock = OpenNlSock(NETLINK_ROUTE);
  if (!sock.ok()) return sock.status();
  nl_cache* raw_cache = nullptr;
  const int err = rtnl_link_alloc_cache(sock->get(), AF_UNSPEC, &raw_cache);
  if (err < 0) return LibnlStatus(err, "rtnetlink link dump");
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw_cache);
  std::vector<LinkInfo> links;
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr;
       obj = nl_cache_get_next(obj)) {
    links.push_back(ToLinkInfo(reinterpret_cast<rtnl_link*>(obj)));
  }
  std::sort(links.begin(), links.end(),
            [](const LinkInfo& a, const LinkInfo& b) {
              return a.ifindex < b.ifindex;
            });
  return links;
}

absl::StatusOr<LinkInfo> GetLink(absl::string_view name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::NotFoundError(absl::StrCat("no link named \"", name,
                                            "\" (names are 1 to ", IFNAMSIZ - 1,
                                            " bytes)"));
  }
  absl::StatusOr<NlSockPtr> sock = OpenNlSock(NETLINK_ROUTE);
  if (!sock.ok()) return sock.status();
  rtnl_link* raw_link = nullptr;
  const std::string name_copy(name);
  const int err =
      rtnl_link_get_kernel(sock->get(), 0, name_copy.c_str(), &raw_link);
  const std::string what = absl::StrCat("rtnetlink get link \"", name, "\"");
  if (err < 0) return LibnlStatus(err, what);
  std::unique_ptr<rtnl_link, LinkDeleter> link(raw_link);
  return ToLinkInfo(link.get());
}

}  // namespace devmem
