#pragma once

// Tracks MSG_ZEROCOPY sends until the kernel says it is done with their
// memory. Each sendmsg that queued bytes gets the socket's next sequence
// number (from 0, wrapping at 2^32); the kernel reports completions on the
// socket's error queue as ranges [lo, hi], possibly merged, with the
// "copied" code when it copied the data after all (loopback does). A part of
// the buffer may be written again once no outstanding send covers it.

#include <cstddef>
#include <cstdint>
#include <deque>

#include "absl/status/statusor.h"
#include "client/socket_calls.h"

namespace devmem {

class ZerocopyCompletions {
 public:
  // Records a send of [offset, offset + size) of the buffer; returns its
  // sequence number.
  uint32_t Sent(uint64_t offset, uint64_t size);
  // The kernel finished sends lo..hi (inclusive, modulo 2^32).
  void Completed(uint32_t lo, uint32_t hi, bool copied);
  // Reads every completion waiting on fd's error queue, without blocking;
  // returns how many sends completed. Errors that are not completions
  // (ee_errno != 0) are returned with the kernel's errno.
  absl::StatusOr<size_t> Drain(int fd, SocketCalls& calls);

  // No outstanding send covers any byte of [offset, offset + size).
  bool Reusable(uint64_t offset, uint64_t size) const;
  size_t outstanding() const { return pending_.size(); }
  uint64_t completed() const { return completed_; }
  uint64_t copied() const { return copied_; }
  uint64_t notifications() const { return notifications_; }

 private:
  struct Pending {
    uint32_t seq;
    uint64_t offset;
    uint64_t size;
    bool done;
  };
  std::deque<Pending> pending_;  // in sequence order
  uint32_t next_seq_ = 0;
  uint64_t completed_ = 0;
  uint64_t copied_ = 0;
  uint64_t notifications_ = 0;
};

}  // namespace devmem
