#include "kernel/ifname_util.h"

#include <net/if.h>

#include "absl/strings/str_cat.h"

namespace devmem {

std::string IfNameForMessages(uint32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(ifindex, name) != nullptr) return name;
  return absl::StrCat("ifindex ", ifindex);
}

std::vector<std::string> ListIfNames() {
  std::vector<std::string> names;
  struct if_nameindex* list = if_nameindex();
  if (list == nullptr) return names;
  for (const struct if_nameindex* it = list; it->if_index != 0; ++it) {
    names.emplace_back(it->if_name);
  }
  if_freenameindex(list);
  return names;
}

}  // namespace devmem
