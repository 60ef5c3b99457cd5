#pragma once

// `devmemctl listen --recv devmem`: the receive loop through DevmemReceiver,
// checking what arrives (devmemctl's pattern, or ncdevmem's `-v N` one),
// device fragments read through a CPU view of the bound buffer, and the
// figures an operator compares with ncdevmem.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "client/socket_calls.h"

namespace devmem {
namespace ctl {

struct DevmemRecvArgs {
  int fd = -1;              // the accepted connection
  uint32_t dmabuf_id = 0;   // the binding's kernel id
  int buffer_fd = -1;       // the bound dma-buf or memfd (for checks)
  uint32_t ncdevmem_n = 0;  // --validate N (0: off)
  bool expect_pattern = false;
  int out_fd = -1;               // --output (linear and device bytes), or -1
  uint64_t max_bytes = 0;        // 0: to the end of the stream
  SocketCalls* calls = nullptr;  // the kernel unless a test says otherwise
};

struct DevmemRecvFigures {
  uint64_t bytes = 0;
  uint64_t device_bytes = 0;
  uint64_t linear_bytes = 0;
  uint64_t unsteered_bytes = 0;
  uint64_t fragments = 0;
  uint64_t tokens_returned = 0;
  uint64_t dontneed_calls = 0;
  uint64_t recv_calls = 0;
};

// Receives to the end (or max_bytes); FAILED_PRECONDITION names the first
// bad byte if a check fails.
absl::Status ReceiveDevmem(const DevmemRecvArgs& args, DevmemRecvFigures* out);

// "device 1048576 B, linear 66 B, not steered 0 B; 256 fragments, 256
// tokens returned in 1 setsockopt call(s)".
std::string DescribeFigures(const DevmemRecvFigures& f);
std::string FiguresJson(const DevmemRecvFigures& f);

}  // namespace ctl
}  // namespace devmem
