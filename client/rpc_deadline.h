#pragma once
// Deadlines for libdevmem's gRPC calls and session-socket frames. Private to
// libdevmem.

#include <grpcpp/client_context.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace devmem {

inline absl::Time DeadlineAfter(absl::Duration timeout) {
  return absl::Now() + timeout;
}

// A call's deadline. With `wait_for_ready` (auto-reconnect) a call made
// while devmemd restarts waits for it (up to the deadline) instead of
// failing on the old connection.
inline void SetRpcDeadline(grpc::ClientContext& context, absl::Duration timeout,
                           bool wait_for_ready = false) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(wait_for_ready);
}

}  // namespace devmem
