#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "kernel/unique_fd.h"

namespace devmem {

// accept4(2) that copes with running out of file descriptors. On EMFILE or
// ENFILE the pending connection stays queued, so a poller on the listening
// socket would wake up forever and the client would hang until it times out.
// Instead, one fd kept in reserve is given up to accept the connection,
// `refuse` is called on it (e.g. to send a refusal), it is closed, and the
// reserve is taken back. Thread-compatible (one accept loop per instance).
class AcceptReserve {
 public:
  AcceptReserve();

  // The accepted connection, or an invalid fd (errno as accept4 left it:
  // EAGAIN when drained, EMFILE after shedding one connection, ...).
  UniqueFd Accept(int listen_fd, int flags,
                  const std::function<void(int)>& refuse);

  // Connections refused for lack of fds so far.
  uint64_t shed() const { return shed_.load(); }

 private:
  UniqueFd spare_;
  std::atomic<uint64_t> shed_{0};
};

}  // namespace devmem
