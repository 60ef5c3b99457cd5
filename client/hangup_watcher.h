#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kernel/unique_fd.h"

namespace devmem {

// The watcher thread's name (ps -L, /proc/PID/task/TID/comm).
inline constexpr char kHangupThreadName[] = "devmem-hangup";

// Waits, on one thread and one epoll set, for any number of sockets to show
// their peer gone (RDHUP, HUP or ERR; never readable data), so that a
// process with a thousand sessions does not keep a thousand watch threads.
// Each registration fires at most once, on the watcher's thread: a callback
// must be short (hand long work to a thread of its own) and must not Unwatch.
class HangupWatcher {
 public:
  HangupWatcher();
  ~HangupWatcher();
  HangupWatcher(const HangupWatcher&) = delete;
  HangupWatcher& operator=(const HangupWatcher&) = delete;

  // The process's watcher, made on first use and never destroyed (a forked
  // child gets one of its own: the parent's thread does not run there).
  static HangupWatcher& Shared();

  // Calls `on_hangup` once when `fd`'s peer is gone. `fd` is borrowed: the
  // caller keeps it open until the callback has run or Unwatch returned.
  // Returns the registration's id (never 0), or the epoll error.
  absl::StatusOr<uint64_t> Watch(int fd, std::function<void()> on_hangup)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stops watching; once it returns, the callback is not running and will
  // not run. An id that fired, was unwatched or is 0 is ignored.
  void Unwatch(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  // Registrations waiting for a hang-up.
  size_t watched() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    int fd = -1;
    std::function<void()> on_hangup;
  };
  void Loop();
  // Takes a fired registration out of the set; false if it was unwatched.
  bool Take(uint64_t id, std::function<void()>* on_hangup)
      ABSL_LOCKS_EXCLUDED(mu_);

  UniqueFd epoll_;
  UniqueFd stop_;  // eventfd, registered with id 0
  mutable absl::Mutex mu_;
  absl::CondVar callback_done_;
  absl::flat_hash_map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t running_ ABSL_GUARDED_BY(mu_) = 0;  // whose callback runs now
  std::thread thread_;
};

}  // namespace devmem
