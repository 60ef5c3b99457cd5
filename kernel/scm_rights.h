#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernel/unique_fd.h"

namespace devmem {

// Hard ceiling on fds in one message, for senders and receivers alike: the
// kernel's own, SCM_MAX_FD (include/net/scm.h; not in the uapi headers).
// sendmsg() with more fails with EINVAL, however many SCM_RIGHTS messages
// they are split into (net/core/scm.c, scm_fp_copy).
inline constexpr size_t kMaxFdsPerMessage = 253;

// One received message: its bytes and the fds that came with it (owned).
struct ReceivedMessage {
  std::string data;
  std::vector<UniqueFd> fds;
  bool eof = false;  // the peer closed the connection (recvmsg returned 0)
};

// Sends `data` as one message on `sock`, with `fds` attached as one SCM_RIGHTS
// control message (none if empty). The fds stay owned by the caller.
// Errors: INVALID_ARGUMENT if more than kMaxFdsPerMessage fds (nothing is
// sent); errno otherwise.
absl::Status SendWithFds(int sock, absl::string_view data,
                         absl::Span<const int> fds);

// Receives one message of at most `max_bytes` bytes and at most `max_fds` fds
// (<= kMaxFdsPerMessage) with MSG_CMSG_CLOEXEC. EINTR is retried.
// Fails with INVALID_ARGUMENT (and closes every fd that came with it, from
// every SCM_RIGHTS control message) if the data was truncated (MSG_TRUNC),
// the control data was truncated (MSG_CTRUNC, e.g. more than `max_fds` fds:
// the kernel closes those that did not fit), more than `max_fds` fds arrived,
// or a control message other than SCM_RIGHTS arrived. EAGAIN on a
// non-blocking socket is UNAVAILABLE.
absl::StatusOr<ReceivedMessage> RecvWithFds(int sock, size_t max_bytes,
                                            size_t max_fds);

}  // namespace devmem
