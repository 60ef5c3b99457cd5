#pragma once

#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace devmem::fleetctl {

// The agents a command talks to, as "HOST:PORT" ("gpu-17:7443",
// "10.0.0.5:7443", "[fd00::5]:7443"): from the positional arguments, from
// `file` (one per line; "#" starts a comment), and from `in` when an
// argument is "-". Order is kept; a host named twice, a missing or bad port
// and an empty list are INVALID_ARGUMENT saying which entry and where.
absl::StatusOr<std::vector<std::string>> ReadHostList(
    const std::vector<std::string>& args, const std::string& file,
    std::istream* in);

// "gpu-17:7443" -> "gpu-17"; "[fd00::5]:7443" -> "fd00::5".
std::string HostName(const std::string& address);

}  // namespace devmem::fleetctl
