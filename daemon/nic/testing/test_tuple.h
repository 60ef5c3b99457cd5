#pragma once

#include <sys/socket.h>

#include <cstdint>

#include "kernel/nic_info.h"

namespace devmem {

// A TCP/IPv4 flow 10.0.0.2:src_port -> 10.0.0.1:dst_port for rule tests.
inline FlowTuple TestTuple(uint16_t src_port, uint16_t dst_port) {
  FlowTuple t;
  t.family = AF_INET;
  t.src_ip = "10.0.0.2";
  t.src_port = src_port;
  t.dst_ip = "10.0.0.1";
  t.dst_port = dst_port;
  return t;
}

}  // namespace devmem
