#include "kernel/dmabuf_view.h"

#include <linux/dma-buf.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {

absl::StatusOr<DmabufView> DmabufView::Map(int fd) {
  struct statfs fs {};
  if (fstatfs(fd, &fs) != 0) return ErrnoStatus(errno, "fstatfs of the buffer");
  const bool is_dmabuf = fs.f_type == DMA_BUF_MAGIC;
  const off_t end = lseek(fd, 0, SEEK_END);
  if (end <= 0) {
    return absl::InvalidArgumentError(
        "the buffer has no size (lseek SEEK_END): not a dma-buf or memfd");
  }
  void* data =
      mmap(nullptr, static_cast<size_t>(end), PROT_READ, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) {
    return ErrnoStatus(
        errno, absl::StrCat("mmap of the ", is_dmabuf ? "dma-buf" : "buffer",
                            " (", end,
                            " bytes) for CPU reads; device memory such as a "
                            "GPU's often cannot be mapped: receive without "
                            "validating"));
  }
  return DmabufView(fd, static_cast<const char*>(data),
                    static_cast<uint64_t>(end), is_dmabuf);
}

DmabufView::DmabufView(DmabufView&& other) noexcept
    : fd_(other.fd_),
      data_(std::exchange(other.data_, nullptr)),
      size_(other.size_),
      is_dmabuf_(other.is_dmabuf_) {}

DmabufView::~DmabufView() {
  if (data_ != nullptr) {
    munmap(const_cast<char*>(data_), static_cast<size_t>(size_));
  }
}

absl::Status DmabufView::Sync(uint64_t flags) {
  if (!is_dmabuf_) return absl::OkStatus();
  dma_buf_sync sync{flags};
  while (ioctl(fd_, DMA_BUF_IOCTL_SYNC, &sync) != 0) {
    if (errno != EINTR && errno != EAGAIN) {
      return ErrnoStatus(errno, "DMA_BUF_IOCTL_SYNC");
    }
  }
  return absl::OkStatus();
}

absl::Status DmabufView::BeginRead() {
  return Sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
}

absl::Status DmabufView::EndRead() {
  return Sync(DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
}

absl::StatusOr<absl::Span<const char>> DmabufView::Bytes(uint64_t offset,
                                                         uint64_t size) const {
  if (offset > size_ || size > size_ - offset) {
    return absl::OutOfRangeError(
        absl::StrCat("fragment [", offset, ", ", offset + size,
                     ") is outside the ", size_, "-byte buffer"));
  }
  return absl::MakeConstSpan(data_ + offset, static_cast<size_t>(size));
}

}  // namespace devmem
