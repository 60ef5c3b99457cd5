#include "kernel/nic_control.h"

#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace devmem {

// drivers/dma-buf/dma-buf.c: dma_buf_fs_type's init_fs_context uses
// DMA_BUF_MAGIC, so fstatfs() on any dma-buf fd reports it.
static_assert(DMA_BUF_MAGIC == 0x444d4142, "include/uapi/linux/magic.h");

DmabufKind ClassifyFd(int fd) {
  struct statfs fs = {};
  if (fstatfs(fd, &fs) != 0) return DmabufKind::kOther;
  if (static_cast<uint64_t>(fs.f_type) == DMA_BUF_MAGIC) {
    return DmabufKind::kDmabuf;
  }
  // memfds live on the internal shmem mount; their link names them.
  std::array<char, 64> target = {};
  const std::string link = absl::StrCat("/proc/self/fd/", fd);
  const ssize_t n = readlink(link.c_str(), target.data(), target.size() - 1);
  if (n > 0 &&
      absl::StartsWith(absl::string_view(target.data(), static_cast<size_t>(n)),
                       "/memfd:")) {
    return DmabufKind::kMemfd;
  }
  return DmabufKind::kOther;
}

std::string DmabufKindName(DmabufKind kind) {
  switch (kind) {
    case DmabufKind::kDmabuf:
      return "dma-buf";
    case DmabufKind::kMemfd:
      return "memfd";
    case DmabufKind::kOther:
      break;
  }
  return "not a dma-buf";
}

}  // namespace devmem
