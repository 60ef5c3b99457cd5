#include "client/devmem_sender.h"

#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernel/devmem_socket.h"
#include "kernel/errno_status.h"

namespace devmem {

absl::StatusOr<std::unique_ptr<DevmemSender>> DevmemSender::Create(
    int fd, const Options& options) {
  if (options.binding_id == 0) {
    return absl::InvalidArgumentError(
        "binding id 0 is no bind-tx binding: pass the id BindTx returned");
  }
  if (options.dmabuf_size == 0) {
    return absl::InvalidArgumentError("the dma-buf's size is needed (> 0)");
  }
  if (!options.device.empty()) {
    char bound[IFNAMSIZ] = {};
    socklen_t len = sizeof(bound);
    if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, bound, &len) != 0) {
      return ErrnoStatus(errno, "getsockopt(SO_BINDTODEVICE)");
    }
    if (options.device != bound) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the socket is bound to device \"", bound, "\", not the binding's \"",
          options.device,
          "\": the kernel refuses devmem sends routed through another device "
          "(ENODEV); get the socket from devmemd for that NIC, or set "
          "SO_BINDTODEVICE"));
    }
  }
  SocketCalls& calls =
      options.calls != nullptr ? *options.calls : KernelSocketCalls();
  const int one = 1;
  if (calls.SetSockOpt(fd, SOL_SOCKET, kSoZerocopy, &one, sizeof(one)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_ZEROCOPY)");
  }
  return std::unique_ptr<DevmemSender>(new DevmemSender(fd, options, calls));
}

ssize_t DevmemSender::SendOnce(uint64_t offset, uint64_t size) {
  // iov_base is an offset into the dma-buf, not an address.
  iovec iov{reinterpret_cast<void*>(  // NOLINT(performance-no-int-to-ptr)
                static_cast<uintptr_t>(offset)),
            static_cast<size_t>(size)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint32_t))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = kScmDevmemDmabuf;
  c->cmsg_len = CMSG_LEN(sizeof(uint32_t));
  std::memcpy(CMSG_DATA(c), &options_.binding_id, sizeof(uint32_t));
  ++sendmsg_calls_;
  return calls_.SendMsg(fd_, &msg, kMsgZerocopy);
}

absl::Status DevmemSender::SendError(int err, uint64_t offset,
                                     uint64_t size) const {
  const std::string what =
      absl::StrCat("devmem sendmsg of [", offset, ", ", offset + size,
                   ") with binding ", options_.binding_id);
  switch (err) {
    case EINVAL:
      return ErrnoStatus(err,
                         absl::StrCat(what,
                                      " (EINVAL: the kernel has no bind-tx "
                                      "binding of that id, or it is not a TX "
                                      "binding, or SO_ZEROCOPY is off; "
                                      "devmem TX needs kernel 6.16+)"));
    case ENODEV:
      return ErrnoStatus(err,
                         absl::StrCat(what,
                                      " (ENODEV: the route goes through "
                                      "another device than the "
                                      "binding's; bind the socket to it)"));
    case EFAULT:
      return ErrnoStatus(err, absl::StrCat(what,
                                           " (EFAULT: past the end of "
                                           "the dma-buf)"));
    default:
      return ErrnoStatus(err, what);
  }
}

absl::Status DevmemSender::Send(uint64_t offset, uint64_t size) {
  if (offset > options_.dmabuf_size || size > options_.dmabuf_size - offset) {
    return absl::OutOfRangeError(
        absl::StrCat("[", offset, ", ", offset + size, ") is outside the ",
                     options_.dmabuf_size, "-byte dma-buf"));
  }
  int full = 0;  // ENOBUFS in a row
  while (size > 0) {
    const uint64_t want = std::min(size, chunk_);
    const ssize_t n = SendOnce(offset, want);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EMSGSIZE && chunk_ > 4096) {
        chunk_ = std::max<uint64_t>(4096, chunk_ / 2);  // too many pages
        continue;
      }
      if (err == ENOBUFS && ++full < 1000) {
        // Too many unread completions (optmem): read them, and wait a
        // moment when there were none yet.
        absl::StatusOr<size_t> drained = PollCompletions();
        if (!drained.ok()) return drained.status();
        if (*drained == 0) {
          pollfd p{fd_, POLLERR, 0};
          poll(&p, 1, 10);
        }
        continue;
      }
      return SendError(err, offset, want);
    }
    full = 0;
    completions_.Sent(offset, static_cast<uint64_t>(n));
    offset += static_cast<uint64_t>(n);
    size -= static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace devmem
