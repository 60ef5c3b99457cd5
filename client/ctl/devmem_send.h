#pragma once

// `devmemctl connect --send devmem`: the test pattern sent from a bind-tx
// binding through DevmemSender. The buffer is filled with the pattern once
// (through a CPU mapping) and sent round and round, each region written
// to the socket again only once the kernel has completed its last send.

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace devmem {
namespace ctl {

struct DevmemSendArgs {
  int fd = -1;              // the connected socket
  uint32_t binding_id = 0;  // the bind-tx binding's kernel id
  int buffer_fd = -1;       // the bound dma-buf or memfd
  std::string device;       // the binding's NIC
  uint64_t bytes = 0;
  bool fill_pattern = true;  // write the pattern into the buffer first
};

struct DevmemSendFigures {
  uint64_t bytes = 0;
  uint64_t sendmsg_calls = 0;
  uint64_t completions = 0;
  uint64_t copied = 0;
};

absl::Status SendDevmem(const DevmemSendArgs& args, DevmemSendFigures* out);

}  // namespace ctl
}  // namespace devmem
