#include "client/ctl/devmem_send.h"

#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/devmem_sender.h"
#include "client/pattern.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace ctl {
namespace {

constexpr absl::Duration kCompletionWait = absl::Seconds(10);

// The buffer's size, and the pattern written into it (stream offset 0 at
// byte 0; the pattern's 1 MiB period makes it continue across wraps).
absl::StatusOr<uint64_t> FillBuffer(int fd, bool fill) {
  const off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0) return absl::InvalidArgumentError("the buffer has no size");
  if (size % static_cast<off_t>(kPatternPeriod) != 0) {
    return absl::InvalidArgumentError(
        "the send buffer must be a whole number of MiB (the pattern's "
        "period)");
  }
  if (!fill) return static_cast<uint64_t>(size);
  void* data =
      mmap(nullptr, static_cast<size_t>(size), PROT_WRITE, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) {
    return ErrnoStatus(errno,
                       "mmap of the send buffer to write the pattern (GPU "
                       "memory cannot be mapped: fill it on the GPU)");
  }
  FillPattern(
      0, absl::MakeSpan(static_cast<char*>(data), static_cast<size_t>(size)));
  munmap(data, static_cast<size_t>(size));
  return static_cast<uint64_t>(size);
}

// Reads completions until [offset, offset + size) may be sent again.
absl::Status WaitReusable(DevmemSender& tx, int fd, uint64_t offset,
                          uint64_t size) {
  const absl::Time deadline = absl::Now() + kCompletionWait;
  for (;;) {
    absl::StatusOr<size_t> got = tx.PollCompletions();
    if (!got.ok()) return got.status();
    if (tx.completions().Reusable(offset, size)) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the kernel did not complete the sends of [", offset, ", ",
          offset + size, ") within ", absl::FormatDuration(kCompletionWait)));
    }
    pollfd p{fd, POLLERR, 0};
    poll(&p, 1, 100);
  }
}

}  // namespace

absl::Status SendDevmem(const DevmemSendArgs& args, DevmemSendFigures* out) {
  absl::StatusOr<uint64_t> size = FillBuffer(args.buffer_fd, args.fill_pattern);
  if (!size.ok()) return size.status();
  DevmemSender::Options o;
  o.binding_id = args.binding_id;
  o.dmabuf_size = *size;
  o.device = args.device;
  absl::StatusOr<std::unique_ptr<DevmemSender>> tx =
      DevmemSender::Create(args.fd, o);
  if (!tx.ok()) return tx.status();
  absl::Status status = absl::OkStatus();
  uint64_t pos = 0;
  while (out->bytes < args.bytes && status.ok()) {
    const uint64_t chunk = std::min(args.bytes - out->bytes, *size - pos);
    status = WaitReusable(**tx, args.fd, pos, chunk);
    if (status.ok()) status = (*tx)->Send(pos, chunk);
    if (status.ok()) {
      out->bytes += chunk;
      pos = (pos + chunk) % *size;
    }
  }
  if (status.ok()) status = WaitReusable(**tx, args.fd, 0, *size);
  out->sendmsg_calls = (*tx)->sendmsg_calls();
  out->completions = (*tx)->completions().completed();
  out->copied = (*tx)->completions().copied();
  return status;
}

}  // namespace ctl
}  // namespace devmem
