#pragma once

// A stand-in for the kernel's devmem receive path, behind SocketCalls: it
// delivers a byte stream (generated, or read from a real socket) as the
// kernel would to a socket steered to a bound queue. Payload goes into a
// "dma-buf" (host memory here) in page-sized fragments with tokens; header
// bytes come as linear data copied into the iov; each recvmsg carries as many
// cmsgs as the control buffer holds (ETOOSMALL when it holds none). Tokens
// come back through SO_DEVMEM_DONTNEED with the kernel's rules: more than
// 128 ranges is EINVAL, at most 1,024 fragments are looked at per call, and
// unknown tokens count 0. It records what it saw, so tests can check that
// every token came back exactly once and that no call broke a limit.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "client/socket_calls.h"

namespace devmem {

struct FakeDevmemOptions {
  uint64_t stream_bytes = UINT64_MAX;  // then end of stream
  uint32_t dmabuf_id = 1;
  size_t dmabuf_pages = 4096;  // 16 MiB of 4 KiB pages
  // The dma-buf's memory (dmabuf_pages * 4096 bytes, e.g. a writable
  // mapping of the memfd a binding was made with); null: the fake's own.
  char* dmabuf_memory = nullptr;
  uint32_t fragment_bytes = 4096;
  // Every `linear_every`-th piece is a linear one of `linear_bytes`
  // (0: never), as headers of a packet that missed the split.
  uint32_t linear_every = 0;
  uint32_t linear_bytes = 66;
  // Tokens freed per DONTNEED at most (0: the kernel's 1,024): to test
  // partial frees.
  size_t free_at_most = 0;
  // Writes the stream's next bytes (at stream `offset`, at most `max`) to
  // `out`; returns how many, 0 at the end of the stream.
  std::function<size_t(uint64_t offset, char* out, size_t max)> source;
};

// A source of PatternByte(offset) (client/pattern.h)-like bytes.
std::function<size_t(uint64_t, char*, size_t)> GeneratedSource(
    uint8_t (*byte)(uint64_t));
// A source that reads a real socket (blocking).
std::function<size_t(uint64_t, char*, size_t)> SocketSource(int fd);

struct FakeDevmemSeen {
  uint64_t recv_calls = 0;
  uint64_t fragments = 0;
  uint64_t dontneed_calls = 0;
  uint64_t freed = 0;
  uint64_t unknown_frees = 0;   // tokens asked back that were not out
  size_t most_ranges = 0;       // in one DONTNEED
  size_t most_frags = 0;        // asked back in one DONTNEED
  size_t most_outstanding = 0;  // tokens out at once
  uint64_t einval = 0;
};

class FakeDevmemKernel final : public SocketCalls {
 public:
  explicit FakeDevmemKernel(FakeDevmemOptions options);

  ssize_t RecvMsg(int fd, msghdr* msg, int flags) override;
  ssize_t SendMsg(int fd, const msghdr* msg, int flags) override;
  int SetSockOpt(int fd, int level, int name, const void* value,
                 socklen_t size) override;

  // The "dma-buf": fragment payload lives here at frag_offset.
  const char* dmabuf() const { return memory_; }
  size_t outstanding() const { return outstanding_; }
  const FakeDevmemSeen& seen() const { return seen_; }

 private:
  bool Put(msghdr* msg, size_t* control_used, int type, uint64_t offset,
           uint32_t size, uint32_t token) const;
  int FreePage();

  FakeDevmemOptions o_;
  std::vector<char> own_;
  char* memory_;
  std::vector<bool> out_;  // page (= token) handed out, not back yet
  size_t next_page_ = 0;   // where the search for a free page starts
  size_t outstanding_ = 0;
  uint64_t offset_ = 0;  // stream bytes delivered
  bool ended_ = false;
  uint64_t pieces_ = 0;
  FakeDevmemSeen seen_;
};

}  // namespace devmem
