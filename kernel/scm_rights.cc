#include "kernel/scm_rights.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
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

namespace {

// Takes ownership of the fds of every SCM_RIGHTS control message in `msg`
// (the kernel merges a sender's several into one, but a receiver cannot rely
// on that), so that any error after this closes them all. Returns false if
// `msg` also holds a control message of another kind.
bool TakeFds(struct msghdr& msg, std::vector<UniqueFd>& fds) {
  bool only_rights = true;
  if (msg.msg_controllen == 0) return only_rights;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      only_rights = false;
      continue;
    }
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(c);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, p + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  return only_rights;
}

// recvmsg() with EINTR retried; EAGAIN is UNAVAILABLE.
absl::StatusOr<size_t> RecvMsg(int sock, struct msghdr& msg) {
  for (;;) {
    const ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::UnavailableError("recvmsg: no message ready (EAGAIN)");
    }
    return ErrnoStatus(errno, "recvmsg");
  }
}

}  // namespace

absl::StatusOr<ReceivedMessage> RecvWithFds(int sock, size_t max_bytes,
                                            size_t max_fds) {
  max_fds = std::min(max_fds, kMaxFdsPerMessage);
  ReceivedMessage out;
  out.data.resize(max_bytes);
  struct iovec iov;
  iov.iov_base = out.data.data();
  iov.iov_len = out.data.size();
  // Room for exactly max_fds fds: the kernel installs as many as fit, closes
  // the rest and sets MSG_CTRUNC (net/core/scm.c, scm_detach_fds).
  alignas(
      struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  struct msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (max_fds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
  }
  absl::StatusOr<size_t> n = RecvMsg(sock, msg);
  if (!n.ok()) return n.status();
  const bool only_rights = TakeFds(msg, out.fds);
  if (msg.msg_flags & MSG_CTRUNC) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control data truncated (MSG_CTRUNC): more than ", max_fds,
        " fds or unexpected ancillary data; all received fds closed"));
  }
  if (msg.msg_flags & MSG_TRUNC) {
    return absl::InvalidArgumentError(
        absl::StrCat("message larger than ", max_bytes, " bytes (MSG_TRUNC)"));
  }
  if (!only_rights) {
    return absl::InvalidArgumentError(
        "unexpected control message (only SCM_RIGHTS is accepted)");
  }
  if (out.fds.size() > max_fds) {
    return absl::InvalidArgumentError(
        absl::StrCat(out.fds.size(), " fds in one message, limit ", max_fds,
                     "; all received fds closed"));
  }
  out.data.resize(*n);
  out.eof = (*n == 0 && out.fds.empty());
  return out;
}

}  // namespace devmem
