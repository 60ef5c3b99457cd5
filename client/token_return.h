#pragma once

// Gives devmem fragment tokens back to the kernel in batches: consecutive
// tokens merge into ranges, and each SO_DEVMEM_DONTNEED carries at most 128
// ranges and 1,024 fragments (the kernel's limits, KERNEL_API.md section
// 2). The kernel answers with the number it freed, looking at tokens in
// order: what follows them is sent again until a call frees nothing more,
// and what is still left is counted as unknown (returned twice, or never
// this socket's).
// Not thread-safe: use it from the thread that calls recvmsg on the socket,
// so that no token is handed out again between a call and its retry.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/socket_calls.h"
#include "kernel/devmem_socket.h"

namespace devmem {

struct TokenReturnStats {
  uint64_t returned = 0;        // tokens the kernel freed
  uint64_t unknown = 0;         // asked for, never freed
  uint64_t dontneed_calls = 0;  // setsockopt(SO_DEVMEM_DONTNEED) calls
};

class TokenReturn {
 public:
  // `fd` is borrowed. Tokens are flushed once `flush_at` are pending.
  TokenReturn(int fd, SocketCalls& calls, size_t flush_at);

  // Queues one token; flushes when flush_at are pending (or the ranges
  // would not fit one call).
  absl::Status Add(uint32_t token);
  // Sends every pending token back now.
  absl::Status Flush();

  size_t pending() const { return pending_; }
  const TokenReturnStats& stats() const { return stats_; }

 private:
  // One setsockopt of ranges_[begin, end), `frags` fragments; retried while
  // it makes progress. Returns the count freed.
  absl::StatusOr<uint64_t> Send(size_t begin, size_t end, uint64_t frags);

  int fd_;
  SocketCalls& calls_;
  size_t flush_at_;
  std::vector<DmabufToken> ranges_;  // reserved once: no allocation per token
  size_t pending_ = 0;
  TokenReturnStats stats_;
};

}  // namespace devmem
