#include "client/zerocopy_completions.h"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernel/devmem_socket.h"
#include "kernel/errno_status.h"

namespace devmem {

uint32_t ZerocopyCompletions::Sent(uint64_t offset, uint64_t size) {
  pending_.push_back({next_seq_, offset, size, false});
  return next_seq_++;
}

void ZerocopyCompletions::Completed(uint32_t lo, uint32_t hi, bool copied) {
  ++notifications_;
  if (pending_.empty()) return;
  const uint32_t first = pending_.front().seq;
  // Sequence numbers wrap: index = seq - first, modulo 2^32.
  const uint32_t count = hi - lo + 1;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t index = (lo + i) - first;
    if (index >= pending_.size() || pending_[index].done) continue;
    pending_[index].done = true;
    ++completed_;
    if (copied) ++copied_;
  }
  while (!pending_.empty() && pending_.front().done) pending_.pop_front();
}

absl::StatusOr<size_t> ZerocopyCompletions::Drain(int fd, SocketCalls& calls) {
  const uint64_t before = completed_;
  for (;;) {
    alignas(cmsghdr) char control[128];
    msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = calls.RecvMsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return ErrnoStatus(errno, "recvmsg(MSG_ERRQUEUE)");
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      const bool recverr =
          (c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
          (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR);
      if (!recverr || c->cmsg_len < CMSG_LEN(sizeof(sock_extended_err))) {
        continue;
      }
      sock_extended_err ee;
      std::memcpy(&ee, CMSG_DATA(c), sizeof(ee));
      if (ee.ee_origin != kSoEeOriginZerocopy) continue;
      if (ee.ee_errno != 0) {
        return ErrnoStatus(static_cast<int>(ee.ee_errno),
                           "a zerocopy completion reported an error");
      }
      Completed(ee.ee_info, ee.ee_data,
                (ee.ee_code & kSoEeCodeZerocopyCopied) != 0);
    }
  }
  return static_cast<size_t>(completed_ - before);
}

bool ZerocopyCompletions::Reusable(uint64_t offset, uint64_t size) const {
  for (const Pending& p : pending_) {
    if (!p.done && offset < p.offset + p.size && p.offset < offset + size) {
      return false;
    }
  }
  return true;
}

}  // namespace devmem
