#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace devmem::agent {

// Gives freed heap memory back to the system (malloc_trim) a little after a
// large answer was relayed (ListReservations or a Watch snapshot of
// thousands of reservations), so the agent's RSS returns to its idle size
// instead of keeping the peak. One thread, idle unless asked.
class HeapTrimmer {
 public:
  explicit HeapTrimmer(absl::Duration delay = absl::Seconds(2));
  ~HeapTrimmer();
  HeapTrimmer(const HeapTrimmer&) = delete;
  HeapTrimmer& operator=(const HeapTrimmer&) = delete;

  // Answers at least this large ask for a trim.
  static constexpr size_t kLargeAnswerBytes = 256 << 10;
  // Trims once within `delay` (after gRPC has freed the answer).
  void Request() { requested_.store(true, std::memory_order_relaxed); }
  uint64_t trims() const { return trims_.load(std::memory_order_relaxed); }

 private:
  const absl::Duration delay_;
  std::atomic<bool> requested_{false};
  std::atomic<uint64_t> trims_{0};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace devmem::agent
