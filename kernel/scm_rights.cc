#include "kernel/scm_rights.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {

absl::Status SendWithFds(int sock, absl::string_view data,
                         absl::Span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot send ", fds.size(), " fds in one message (limit ",
                     kMaxFdsPerMessage, ")"));
  }
  struct iovec iov;
  iov.iov_base = const_cast<char*>(data.data());
  iov.iov_len = data.size();
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(
      struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  if (!fds.empty()) {
    const size_t payload = sizeof(int) * fds.size();
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(payload);
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(payload);
    std::memcpy(CMSG_DATA(cmsg), fds.data(), payload);
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      if (static_cast<size_t>(n) != data.size()) {
        return absl::DataLossError(
            absl::StrCat("short send: ", n, " of ", data.size(), " bytes"));
      }
      return absl::OkStatus();
    }
    if (errno == EINTR) continue;
    return ErrnoStatus(errno, "sendmsg");
  }
}

absl::StatusOr<ReceivedMessage> RecvWithFds(int sock, size_t max_bytes,
                                            size_t max_fds) {
  if (max_fds > kMaxFdsPerMessage) max_fds = kMaxFdsPerMessage;
  ReceivedMessage out;
  // One spare byte lets MSG_TRUNC-less stream sockets still be checked for
  // size.
  out.data.resize(max_bytes);
  struct iovec iov;
  iov.iov_base = out.data.data();
  iov.iov_len = out.data.size();
  // Room for exactly max_fds fds: one more makes the kernel set MSG_CTRUNC.
  alignas(
      struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = max_fds == 0 ? 0 : CMSG_SPACE(sizeof(int) * max_fds);
  if (max_fds == 0) msg.msg_control = nullptr;
  ssize_t n;
  for (;;) {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::UnavailableError("recvmsg: no message ready (EAGAIN)");
    }
    return ErrnoStatus(errno, "recvmsg");
  }
  // Take ownership of every fd first, so any error below closes them all.
  bool foreign_cmsg = false;
  if (msg.msg_controllen > 0) {
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char* p = CMSG_DATA(c);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, p + i * sizeof(int), sizeof(int));
          out.fds.emplace_back(fd);
        }
      } else {
        foreign_cmsg = true;
      }
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control data truncated (MSG_CTRUNC): more than ", max_fds,
        " fds or unexpected ancillary data; all received fds closed"));
  }
  if (msg.msg_flags & MSG_TRUNC) {
    return absl::InvalidArgumentError(
        absl::StrCat("message larger than ", max_bytes, " bytes (MSG_TRUNC)"));
  }
  if (foreign_cmsg) {
    return absl::InvalidArgumentError(
        "unexpected control message (only SCM_RIGHTS is accepted)");
  }
  if (out.fds.size() > max_fds) {
    return absl::InvalidArgumentError(
        absl::StrCat(out.fds.size(), " fds in one message, limit ", max_fds));
  }
  out.data.resize(static_cast<size_t>(n));
  out.eof = (n == 0 && out.fds.empty());
  return out;
}

}  // namespace devmem
