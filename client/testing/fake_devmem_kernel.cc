#include "client/testing/fake_devmem_kernel.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "kernel/devmem_socket.h"

namespace devmem {
namespace {

constexpr uint32_t kPage = 4096;

}  // namespace

std::function<size_t(uint64_t, char*, size_t)> GeneratedSource(
    uint8_t (*byte)(uint64_t)) {
  return [byte](uint64_t offset, char* out, size_t max) {
    for (size_t i = 0; i < max; ++i) {
      out[i] = static_cast<char>(byte(offset + i));
    }
    return max;
  };
}

std::function<size_t(uint64_t, char*, size_t)> SocketSource(int fd) {
  return [fd](uint64_t, char* out, size_t max) -> size_t {
    size_t got = 0;
    while (got < max) {  // a whole piece, as the kernel hands out
      const ssize_t n = read(fd, out + got, max - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    return got;
  };
}

FakeDevmemKernel::FakeDevmemKernel(FakeDevmemOptions options)
    : o_(std::move(options)),
      own_(o_.dmabuf_memory == nullptr ? o_.dmabuf_pages * kPage : 0),
      memory_(o_.dmabuf_memory != nullptr ? o_.dmabuf_memory : own_.data()),
      out_(o_.dmabuf_pages, false) {
  o_.fragment_bytes = std::clamp<uint32_t>(o_.fragment_bytes, 1, kPage);
}

int FakeDevmemKernel::FreePage() {
  for (size_t i = 0; i < out_.size(); ++i) {
    const size_t page = (next_page_ + i) % out_.size();
    if (!out_[page]) {
      next_page_ = page + 1;
      return static_cast<int>(page);
    }
  }
  return -1;
}

bool FakeDevmemKernel::Put(msghdr* msg, size_t* control_used, int type,
                           uint64_t offset, uint32_t size,
                           uint32_t token) const {
  if (*control_used + CMSG_SPACE(sizeof(DmabufCmsg)) > msg->msg_controllen) {
    return false;
  }
  auto* c = reinterpret_cast<cmsghdr*>(static_cast<char*>(msg->msg_control) +
                                       *control_used);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = type;
  c->cmsg_len = CMSG_LEN(sizeof(DmabufCmsg));
  DmabufCmsg frag{};
  frag.frag_offset = offset;
  frag.frag_size = size;
  frag.frag_token = token;
  frag.dmabuf_id = type == kScmDevmemDmabuf ? o_.dmabuf_id : 0;
  std::memcpy(CMSG_DATA(c), &frag, sizeof(frag));
  *control_used += CMSG_SPACE(sizeof(DmabufCmsg));
  return true;
}

ssize_t FakeDevmemKernel::RecvMsg(int, msghdr* msg, int flags) {
  ++seen_.recv_calls;
  if ((flags & kMsgSockDevmem) == 0) {
    errno = EFAULT;  // devmem data read without the flag
    return -1;
  }
  const size_t capacity = msg->msg_controllen;
  size_t budget = 0;
  for (size_t i = 0; i < msg->msg_iovlen; ++i) {
    budget += msg->msg_iov[i].iov_len;
  }
  char* out = static_cast<char*>(msg->msg_iov[0].iov_base);
  size_t control_used = 0;
  size_t sent = 0;
  size_t linear = 0;
  msg->msg_flags = 0;
  while (sent < budget && offset_ < o_.stream_bytes && !ended_) {
    const bool is_linear = o_.linear_every != 0 &&
                           pieces_ % o_.linear_every == o_.linear_every - 1;
    uint32_t size = static_cast<uint32_t>(
        std::min<uint64_t>({is_linear ? o_.linear_bytes : o_.fragment_bytes,
                            o_.stream_bytes - offset_, budget - sent}));
    // Room first (a cmsg, a page), then the bytes: what does not fit stays
    // in the "socket" for the next call.
    if (control_used + CMSG_SPACE(sizeof(DmabufCmsg)) > capacity) break;
    if (is_linear) {
      if (linear + size > msg->msg_iov[0].iov_len) break;
      size = static_cast<uint32_t>(o_.source(offset_, out + linear, size));
      if (size == 0) {
        ended_ = true;
        break;
      }
      Put(msg, &control_used, kScmDevmemLinear, 0, size, 0);
      linear += size;
    } else {
      const int page = FreePage();
      if (page < 0) break;  // every page pinned by the receiver
      char* dst = memory_ + static_cast<size_t>(page) * kPage;
      size = static_cast<uint32_t>(o_.source(offset_, dst, size));
      if (size == 0) {
        ended_ = true;
        break;
      }
      Put(msg, &control_used, kScmDevmemDmabuf,
          static_cast<uint64_t>(page) * kPage, size,
          static_cast<uint32_t>(page));
      out_[page] = true;
      ++outstanding_;
      ++seen_.fragments;
      seen_.most_outstanding = std::max(seen_.most_outstanding, outstanding_);
    }
    offset_ += size;
    sent += size;
    ++pieces_;
  }
  msg->msg_controllen = control_used;
  if (sent == 0 && offset_ < o_.stream_bytes && !ended_) {
    // Nothing fit: no room for a cmsg, or no free page to receive into.
    errno = capacity < CMSG_SPACE(sizeof(DmabufCmsg)) ? kEtoosmall : ENOMEM;
    return -1;
  }
  return static_cast<ssize_t>(sent);
}

ssize_t FakeDevmemKernel::SendMsg(int, const msghdr*, int) {
  errno = ENOSYS;
  return -1;
}

int FakeDevmemKernel::SetSockOpt(int, int level, int name, const void* value,
                                 socklen_t size) {
  if (level != SOL_SOCKET || name != kSoDevmemDontneed) {
    errno = ENOPROTOOPT;
    return -1;
  }
  ++seen_.dontneed_calls;
  if (size % sizeof(DmabufToken) != 0 ||
      size > kMaxDontneedRanges * sizeof(DmabufToken)) {
    ++seen_.einval;
    errno = EINVAL;
    return -1;
  }
  const size_t ranges = size / sizeof(DmabufToken);
  const auto* tokens = static_cast<const DmabufToken*>(value);
  const size_t limit =
      o_.free_at_most != 0 ? o_.free_at_most : kMaxDontneedFrags;
  seen_.most_ranges = std::max(seen_.most_ranges, ranges);
  size_t asked = 0;
  size_t examined = 0;
  int freed = 0;
  for (size_t r = 0; r < ranges; ++r) {
    asked += tokens[r].token_count;
    for (uint32_t i = 0; i < tokens[r].token_count; ++i) {
      if (examined == limit) break;
      ++examined;
      const uint32_t t = tokens[r].token_start + i;
      if (t < out_.size() && out_[t]) {
        out_[t] = false;
        --outstanding_;
        ++freed;
      } else {
        ++seen_.unknown_frees;
      }
    }
  }
  seen_.most_frags = std::max(seen_.most_frags, asked);
  seen_.freed += static_cast<uint64_t>(freed);
  return freed;
}

}  // namespace devmem
