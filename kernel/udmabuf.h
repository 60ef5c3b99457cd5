#pragma once

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernel/unique_fd.h"

namespace devmem {

// A sealed memfd of `bytes` (rounded up to the page size): F_SEAL_SHRINK is
// set, as udmabuf requires, and the fd is close-on-exec. The simulated
// backend binds such a memfd as stand-in device memory. `name` shows in
// /proc/<pid>/fd as "/memfd:<name>". INVALID_ARGUMENT for 0 bytes; the
// kernel's errno otherwise.
absl::StatusOr<UniqueFd> CreateSealedMemfd(size_t bytes,
                                           absl::string_view name);

// A real dma-buf of `bytes` (rounded up to the page size) backed by host
// memory, made the way the kernel's ncdevmem makes one: a sealed memfd
// handed to /dev/udmabuf's UDMABUF_CREATE (drivers/dma-buf/udmabuf.c). The
// dma-buf keeps its pages pinned, so the memfd is closed before returning.
//
// Errors keep the errno (StatusErrno()):
//   FAILED_PRECONDITION "no dma-buf exporter: /dev/udmabuf is missing ..."
//     when the device node does not exist (no CONFIG_UDMABUF / module);
//   PERMISSION_DENIED when it exists but cannot be opened;
//   the ioctl's errno otherwise (e.g. EINVAL for a size above the module's
//   size_limit_mb).
absl::StatusOr<UniqueFd> CreateUdmabuf(size_t bytes);

// The device node CreateUdmabuf() opens.
inline constexpr char kUdmabufDevice[] = "/dev/udmabuf";

}  // namespace devmem
