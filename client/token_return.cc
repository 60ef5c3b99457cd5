#include "client/token_return.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {

TokenReturn::TokenReturn(int fd, SocketCalls& calls, size_t flush_at)
    : fd_(fd),
      calls_(calls),
      flush_at_(std::clamp<size_t>(flush_at, 1, kMaxDontneedFrags)) {
  ranges_.reserve(kMaxDontneedRanges + 1);
}

absl::Status TokenReturn::Add(uint32_t token) {
  if (!ranges_.empty()) {
    DmabufToken& last = ranges_.back();
    if (last.token_start + last.token_count == token &&
        last.token_count < kMaxDontneedFrags) {
      ++last.token_count;
      ++pending_;
      return pending_ >= flush_at_ ? Flush() : absl::OkStatus();
    }
  }
  if (ranges_.size() == kMaxDontneedRanges) {
    absl::Status flushed = Flush();
    if (!flushed.ok()) return flushed;
  }
  ranges_.push_back({token, 1});
  ++pending_;
  return pending_ >= flush_at_ ? Flush() : absl::OkStatus();
}

absl::Status TokenReturn::Flush() {
  // Calls of at most 128 ranges and 1,024 fragments; a range never holds
  // more than 1,024 (Add caps it).
  size_t begin = 0;
  while (begin < ranges_.size()) {
    size_t end = begin;
    uint64_t frags = 0;
    while (end < ranges_.size() && end - begin < kMaxDontneedRanges &&
           frags + ranges_[end].token_count <= kMaxDontneedFrags) {
      frags += ranges_[end].token_count;
      ++end;
    }
    absl::StatusOr<uint64_t> freed = Send(begin, end, frags);
    if (!freed.ok()) return freed.status();
    stats_.returned += *freed;
    stats_.unknown += frags - *freed;
    begin = end;
  }
  ranges_.clear();
  pending_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TokenReturn::Send(size_t begin, size_t end,
                                           uint64_t frags) {
  uint64_t freed = 0;
  while (begin < end) {
    ++stats_.dontneed_calls;
    const int n = calls_.SetSockOpt(
        fd_, SOL_SOCKET, kSoDevmemDontneed, &ranges_[begin],
        static_cast<socklen_t>((end - begin) * sizeof(DmabufToken)));
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      return ErrnoStatus(
          err, absl::StrCat("SO_DEVMEM_DONTNEED of ", frags, " token(s) in ",
                            end - begin, " range(s)",
                            err == EBADF ? " (not a TCP socket)" : ""));
    }
    // The kernel looks at tokens in order and stops after its per-call cap:
    // send again what follows the n it freed. A call that frees nothing
    // means the rest was never this socket's (or came back twice).
    if (n == 0) break;
    freed += static_cast<uint64_t>(n);
    uint64_t skip = static_cast<uint64_t>(n);
    while (skip > 0 && begin < end) {
      DmabufToken& r = ranges_[begin];
      if (r.token_count <= skip) {
        skip -= r.token_count;
        ++begin;
      } else {
        r.token_start += static_cast<uint32_t>(skip);
        r.token_count -= static_cast<uint32_t>(skip);
        skip = 0;
      }
    }
  }
  return std::min(freed, frags);
}

}  // namespace devmem
