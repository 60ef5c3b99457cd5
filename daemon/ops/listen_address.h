#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace devmem {

// Where the metrics endpoint listens: "127.0.0.1:9464", "[::1]:9464" or
// "127.0.0.1:0" (any free port). Only loopback literals are accepted: the
// endpoint has no authentication, so it must not face the network.
// INVALID_ARGUMENT naming the field and what to write otherwise.
struct HttpListenAddress {
  std::string host;  // "127.0.0.1" or "::1"
  int port = 0;
  bool ipv6 = false;
};
absl::StatusOr<HttpListenAddress> ParseLoopbackListen(const std::string& text,
                                                      const std::string& what);

}  // namespace devmem
