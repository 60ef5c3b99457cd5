#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace devmem {

// A numeric address and port as devmem.v1.SocketAddress carries them. The
// daemon never resolves names, so neither does the client.
struct HostPort {
  std::string ip;     // numeric IPv4 or IPv6, no brackets; empty = wildcard
  uint16_t port = 0;  // 0 = any (listen) / unset
};

// Parses "IP:PORT", "[IPv6]:PORT", and, when `port_optional`, also a bare
// "IP", "[IPv6]" or unbracketed IPv6 address. The address must be numeric
// (checked with inet_pton). INVALID_ARGUMENT saying what is wrong otherwise.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text,
                                       bool port_optional = false);

// "1.2.3.4:80" or "[fd00::1]:80"; an empty ip prints as "*".
std::string FormatHostPort(absl::string_view ip, uint32_t port);

}  // namespace devmem
