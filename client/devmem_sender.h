#pragma once

// Sends from device memory bound with bind-tx (kernel 6.16+): SO_ZEROCOPY on
// the socket, then sendmsg(MSG_ZEROCOPY) whose iov entries are offsets into
// the dma-buf, with an SCM_DEVMEM_DMABUF cmsg carrying the bare u32 binding
// id (KERNEL_API.md section 2). A send larger than one call takes is split
// (the kernel's EMSGSIZE halves the chunk); completions come back through
// ZerocopyCompletions, which says when a region may be written again.
// Not thread-safe.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/socket_calls.h"
#include "client/zerocopy_completions.h"

namespace devmem {

class DevmemSender {
 public:
  struct Options {
    uint32_t binding_id = 0;   // the bind-tx id (never 0)
    uint64_t dmabuf_size = 0;  // bytes in the bound dma-buf
    // The device the binding is on: the socket must be bound to it
    // (SO_BINDTODEVICE), since the kernel refuses a route through another.
    std::string device;
    uint64_t max_chunk = 1 << 20;  // bytes per sendmsg to start with
    SocketCalls* calls = nullptr;  // nullptr: the kernel
  };

  // Checks the options and the socket, and turns SO_ZEROCOPY on. `fd` is a
  // connected TCP socket, borrowed.
  static absl::StatusOr<std::unique_ptr<DevmemSender>> Create(
      int fd, const Options& options);

  // Queues [offset, offset + size) of the dma-buf for sending, in as many
  // calls as it takes; blocks while the socket's buffer is full.
  absl::Status Send(uint64_t offset, uint64_t size);
  // Reads the completions that have arrived (never blocks).
  absl::StatusOr<size_t> PollCompletions() {
    return completions_.Drain(fd_, calls_);
  }
  const ZerocopyCompletions& completions() const { return completions_; }
  uint64_t sendmsg_calls() const { return sendmsg_calls_; }
  uint64_t chunk() const { return chunk_; }

 private:
  DevmemSender(int fd, const Options& options, SocketCalls& calls)
      : fd_(fd), options_(options), calls_(calls), chunk_(options.max_chunk) {}
  // One sendmsg of up to `size` bytes at `offset`: bytes queued, or -1 and
  // errno.
  ssize_t SendOnce(uint64_t offset, uint64_t size);
  absl::Status SendError(int err, uint64_t offset, uint64_t size) const;

  int fd_;
  Options options_;
  SocketCalls& calls_;
  uint64_t chunk_;
  uint64_t sendmsg_calls_ = 0;
  ZerocopyCompletions completions_;
};

}  // namespace devmem
