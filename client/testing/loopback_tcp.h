#pragma once

// A connected TCP pair on 127.0.0.1 (client end, accepted end), for tests
// and benches of the data path on the real kernel. Exits the process if
// loopback TCP does not work at all.

#include "kernel/unique_fd.h"

namespace devmem {

struct TcpPair {
  UniqueFd client;
  UniqueFd server;
};

TcpPair LoopbackTcpPair();

}  // namespace devmem
