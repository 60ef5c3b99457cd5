#pragma once
// The host's recent changes as events (devmem.v1.Event) with revisions that
// only increase, kept in a bounded ring (the newest `capacity`), and a way to
// wait for newer ones (Watch, Drain). Revisions start at the clock's
// microseconds since the epoch, so they keep increasing across restarts
// (unless more than one event a microsecond is sustained); a watcher holding
// a revision from before a restart gets a snapshot, not a silent gap.
//
// Thread-safe; a leaf in the lock order (it calls out to nothing).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/base/clock.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

class EventLog {
 public:
  explicit EventLog(size_t capacity = 4096,
                    const Clock* clock = RealClock::Get());

  // Stamps the event's revision and time, keeps it, wakes waiters. Returns
  // its revision.
  uint64_t Publish(devmem::v1::Event event) ABSL_LOCKS_EXCLUDED(mu_);

  // The newest revision (the starting point, if nothing happened yet).
  uint64_t revision() const ABSL_LOCKS_EXCLUDED(mu_);

  struct Read {
    std::vector<devmem::v1::Event> events;  // revision > since, oldest first
    // Events after `since` were dropped from the ring (or `since` is not a
    // revision of this run): the caller needs a snapshot.
    bool compacted = false;
    uint64_t oldest = 0;  // the oldest revision kept (0 if none)
  };
  // At most `max` events newer than `since`.
  Read Since(uint64_t since, size_t max) const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until an event newer than `since` exists or `timeout` passes;
  // true if one does.
  bool WaitNewer(uint64_t since, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t capacity_;
  const Clock* const clock_;
  mutable absl::Mutex mu_;
  // The revision before this run's first event.
  const uint64_t start_;
  uint64_t last_ ABSL_GUARDED_BY(mu_);
  std::deque<devmem::v1::Event> ring_ ABSL_GUARDED_BY(mu_);
};

}  // namespace devmem
