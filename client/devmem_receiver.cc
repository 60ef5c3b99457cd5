#include "client/devmem_receiver.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernel/devmem_socket.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

// What a failed recvmsg(MSG_SOCK_DEVMEM) means (KERNEL_API.md section 2).
absl::Status RecvError(int err, size_t control_bytes) {
  switch (err) {
    case kEtoosmall:
      return absl::ResourceExhaustedError(absl::StrCat(
          "recvmsg(MSG_SOCK_DEVMEM): the control buffer (", control_bytes,
          " bytes) cannot hold one fragment's cmsg (ETOOSMALL); raise "
          "max_fragments"));
    case EFAULT:
      return ErrnoStatus(
          err,
          "recvmsg(MSG_SOCK_DEVMEM) (EFAULT: before kernel 6.18 every devmem "
          "receive error reads so: the binding may be gone, or the socket's "
          "data belongs to another binding)");
    case ENODEV:
      return absl::FailedPreconditionError(
          "recvmsg(MSG_SOCK_DEVMEM): ENODEV: the data is in device memory "
          "this socket cannot return (the binding or its NIC went away)");
    case ENOMEM:
      return absl::ResourceExhaustedError(
          "recvmsg(MSG_SOCK_DEVMEM): ENOMEM: the kernel could not track more "
          "fragments; return tokens sooner (a smaller return_at)");
    case EAGAIN:
      return absl::UnavailableError("recvmsg: no data yet (EAGAIN)");
    default:
      return ErrnoStatus(err, "recvmsg(MSG_SOCK_DEVMEM)");
  }
}

}  // namespace

DevmemReceiver::DevmemReceiver(int fd, const Options& options)
    : fd_(fd),
      options_(options),
      calls_(options.calls != nullptr ? *options.calls : KernelSocketCalls()),
      tokens_(fd, calls_, options.return_at),
      control_(CMSG_SPACE(sizeof(DmabufCmsg)) *
               std::max<size_t>(options.max_fragments, 1)) {
  batch_.pieces.reserve(std::max<size_t>(options.max_fragments, 1));
}

absl::StatusOr<const RecvBatch*> DevmemReceiver::Receive(
    absl::Span<char> buffer) {
  if (options_.tokens == TokenPolicy::kAfterEachBatch) {
    absl::Status released = Release(batch_);
    if (!released.ok()) return released;
  }
  batch_.pieces.clear();
  batch_.bytes = 0;
  batch_.steered = false;
  batch_released_ = false;
  iovec iov{buffer.data(), buffer.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control_.data();
  msg.msg_controllen = control_.size();
  ssize_t n = 0;
  do {
    n = calls_.RecvMsg(fd_, &msg, kMsgSockDevmem);
  } while (n < 0 && errno == EINTR);
  ++stats_.recv_calls;
  if (n < 0) return RecvError(errno, control_.size());
  absl::Status parsed = Parse(static_cast<size_t>(n), msg);
  if (!parsed.ok()) {
    // Whatever arrived goes back now: the caller never sees this batch.
    absl::Status released = Release(batch_);
    if (released.ok()) released = tokens_.Flush();
    batch_.pieces.clear();
    return released.ok() ? parsed : released;
  }
  return &batch_;
}

absl::Status DevmemReceiver::Parse(size_t bytes, const msghdr& msg) {
  batch_.bytes = bytes;
  size_t described = 0;
  size_t linear = 0;
  absl::Status bad = absl::OkStatus();
  for (const cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), const_cast<cmsghdr*>(c))) {
    if (c->cmsg_level != SOL_SOCKET || (c->cmsg_type != kScmDevmemLinear &&
                                        c->cmsg_type != kScmDevmemDmabuf)) {
      continue;
    }
    if (c->cmsg_len < CMSG_LEN(sizeof(DmabufCmsg))) {
      return absl::InternalError(absl::StrCat(
          "a devmem cmsg of ", c->cmsg_len, " bytes (",
          CMSG_LEN(sizeof(DmabufCmsg)),
          " expected): this kernel's struct dmabuf_cmsg is not the one "
          "libdevmem knows"));
    }
    DmabufCmsg frag;
    std::memcpy(&frag, CMSG_DATA(c), sizeof(frag));
    RecvPiece piece;
    piece.size = frag.frag_size;
    if (c->cmsg_type == kScmDevmemLinear) {
      piece.kind = RecvPiece::kLinear;
      piece.buffer_offset = linear;
      linear += frag.frag_size;
      stats_.linear_bytes += frag.frag_size;
    } else {
      piece.kind = RecvPiece::kDevice;
      piece.dmabuf_offset = frag.frag_offset;
      piece.token = frag.frag_token;
      piece.dmabuf_id = frag.dmabuf_id;
      stats_.device_bytes += frag.frag_size;
      ++stats_.fragments;
      if (bad.ok()) bad = Check(piece);
    }
    described += frag.frag_size;
    batch_.pieces.push_back(piece);
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return absl::DataLossError(
        "recvmsg(MSG_SOCK_DEVMEM): the control buffer was truncated "
        "(MSG_CTRUNC): fragments were lost, and their device memory stays "
        "pinned until the socket closes");
  }
  if (!bad.ok()) return bad;
  if (batch_.pieces.empty()) {
    stats_.unsteered_bytes += bytes;  // ordinary data, all in the buffer
    return absl::OkStatus();
  }
  batch_.steered = true;
  if (described != bytes || linear > bytes) {
    return absl::InternalError(
        absl::StrCat("recvmsg returned ", bytes,
                     " bytes but its devmem cmsgs describe ", described));
  }
  return absl::OkStatus();
}

absl::Status DevmemReceiver::Check(const RecvPiece& piece) const {
  if (piece.dmabuf_id == options_.dmabuf_id) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "a fragment of dma-buf binding ", piece.dmabuf_id,
      " arrived, but this receiver's binding is ", options_.dmabuf_id,
      ": the socket is steered to another binding's queue (its token is "
      "returned)"));
}

absl::Status DevmemReceiver::ReturnTokens() {
  if (options_.tokens == TokenPolicy::kAfterEachBatch) {
    absl::Status released = Release(batch_);
    if (!released.ok()) return released;
  }
  return tokens_.Flush();
}

absl::Status DevmemReceiver::Release(const RecvPiece& piece) {
  if (piece.kind != RecvPiece::kDevice) return absl::OkStatus();
  return tokens_.Add(piece.token);
}

absl::Status DevmemReceiver::Release(const RecvBatch& batch) {
  if (&batch == &batch_) {
    if (batch_released_) return absl::OkStatus();
    batch_released_ = true;
  }
  for (const RecvPiece& piece : batch.pieces) {
    absl::Status released = Release(piece);
    if (!released.ok()) return released;
  }
  return absl::OkStatus();
}

}  // namespace devmem
