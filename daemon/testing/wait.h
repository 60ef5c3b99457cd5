#pragma once

#include <functional>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace devmem {

// Polls `done` until it returns true or `timeout` passes. For state that
// another thread changes without a notification to wait on. Returns the last
// result.
inline bool WaitUntil(const std::function<bool()>& done,
                      absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return done();
    std::this_thread::yield();
  }
  return true;
}

}  // namespace devmem
