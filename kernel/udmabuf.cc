#include "kernel/udmabuf.h"

#include <fcntl.h>
#include <linux/udmabuf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

// udmabuf_create() refuses an offset or size that is not page aligned
// (drivers/dma-buf/udmabuf.c: IS_ALIGNED(..., PAGE_SIZE)).
absl::StatusOr<size_t> PageAligned(size_t bytes) {
  if (bytes == 0) {
    return absl::InvalidArgumentError("device memory of 0 bytes");
  }
  const long page = sysconf(_SC_PAGESIZE);
  const size_t p = page > 0 ? static_cast<size_t>(page) : 4096;
  if (bytes > SIZE_MAX - p) {
    return absl::InvalidArgumentError(
        absl::StrCat("device memory of ", bytes, " bytes is too large"));
  }
  return (bytes + p - 1) / p * p;
}

// The same status with another code: the errno and extack payloads stay.
absl::Status WithCode(const absl::Status& status, absl::StatusCode code,
                      absl::string_view message) {
  absl::Status out(code, message);
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) {
        out.SetPayload(url, payload);
      });
  return out;
}

}  // namespace

absl::StatusOr<UniqueFd> CreateSealedMemfd(size_t bytes,
                                           absl::string_view name) {
  absl::StatusOr<size_t> size = PageAligned(bytes);
  if (!size.ok()) return size.status();
  const std::string label(name);
  UniqueFd memfd(memfd_create(label.c_str(), MFD_ALLOW_SEALING | MFD_CLOEXEC));
  if (!memfd.valid()) return ErrnoStatus(errno, "memfd_create");
  if (ftruncate(memfd.get_unowned(), static_cast<off_t>(*size)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("ftruncate memfd to ", *size));
  }
  // udmabuf_create() refuses a memfd without F_SEAL_SHRINK (its pages could
  // vanish under the device).
  if (fcntl(memfd.get_unowned(), F_ADD_SEALS, F_SEAL_SHRINK) != 0) {
    return ErrnoStatus(errno, "fcntl(F_ADD_SEALS, F_SEAL_SHRINK)");
  }
  return memfd;
}

absl::StatusOr<UniqueFd> CreateUdmabuf(size_t bytes) {
  absl::StatusOr<size_t> size = PageAligned(bytes);
  if (!size.ok()) return size.status();
  // Opened first: without an exporter there is no point in allocating.
  UniqueFd dev(open(kUdmabufDevice, O_RDWR | O_CLOEXEC));
  if (!dev.valid()) {
    const int err = errno;
    const absl::Status raw =
        ErrnoStatus(err, absl::StrCat("open ", kUdmabufDevice));
    if (err == ENOENT || err == ENODEV || err == ENXIO) {
      return WithCode(
          raw, absl::StatusCode::kFailedPrecondition,
          absl::StrCat("no dma-buf exporter: ", kUdmabufDevice,
                       " is missing (load the udmabuf module, "
                       "CONFIG_UDMABUF), so no dma-buf can be made here; ",
                       raw.message()));
    }
    return raw;
  }
  absl::StatusOr<UniqueFd> memfd = CreateSealedMemfd(*size, "devmem-udmabuf");
  if (!memfd.ok()) return memfd.status();

  struct udmabuf_create create = {};
  create.memfd = static_cast<__u32>(memfd->get_unowned());
  create.flags = UDMABUF_FLAGS_CLOEXEC;
  create.offset = 0;
  create.size = *size;
  const int fd = ioctl(dev.get_unowned(), UDMABUF_CREATE, &create);
  if (fd < 0) {
    return ErrnoStatus(
        errno, absl::StrCat("ioctl(", kUdmabufDevice, ", UDMABUF_CREATE, ",
                            *size, " bytes)"));
  }
  return UniqueFd(fd);
}

}  // namespace devmem
