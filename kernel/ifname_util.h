#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace devmem {

// "veth0" for error messages, or "ifindex 7" if the index has no name (any
// more). Looks the name up in the calling thread's network namespace.
std::string IfNameForMessages(uint32_t ifindex);

// The interface names in the calling thread's network namespace, in ifindex
// order (if_nameindex(3)); empty if they cannot be read.
std::vector<std::string> ListIfNames();

}  // namespace devmem
