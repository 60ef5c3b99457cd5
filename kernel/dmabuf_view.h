#pragma once

// A CPU view of a dma-buf (or of a memfd standing in for one in the
// simulated backend): mapped read-only, with DMA_BUF_IOCTL_SYNC around
// reads where the buffer is a real dma-buf (ncdevmem reads its fragments
// the same way). GPU memory usually cannot be mapped: Map says so.

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace devmem {

class DmabufView {
 public:
  // Maps `fd` (borrowed) whole.
  static absl::StatusOr<DmabufView> Map(int fd);

  DmabufView(DmabufView&& other) noexcept;
  DmabufView& operator=(DmabufView&& other) = delete;
  DmabufView(const DmabufView&) = delete;
  DmabufView& operator=(const DmabufView&) = delete;
  ~DmabufView();

  // Brackets CPU reads (DMA_BUF_SYNC_START/END | READ); no-ops for a memfd.
  absl::Status BeginRead();
  absl::Status EndRead();
  // The bytes [offset, offset + size); OUT_OF_RANGE past the end.
  absl::StatusOr<absl::Span<const char>> Bytes(uint64_t offset,
                                               uint64_t size) const;

  uint64_t size() const { return size_; }
  bool is_dmabuf() const { return is_dmabuf_; }

 private:
  DmabufView(int fd, const char* data, uint64_t size, bool is_dmabuf)
      : fd_(fd), data_(data), size_(size), is_dmabuf_(is_dmabuf) {}
  absl::Status Sync(uint64_t flags);

  int fd_;
  const char* data_;
  uint64_t size_;
  bool is_dmabuf_;
};

}  // namespace devmem
