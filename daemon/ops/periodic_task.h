#pragma once
// Runs a function every `interval` on a thread of its own until destroyed
// (reservation expiry). The first run is one interval after Start. Stop (and
// the destructor) wakes the thread at once and joins it; the function must
// not call Stop.

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace devmem {

class PeriodicTask {
 public:
  PeriodicTask(absl::Duration interval, std::function<void()> run)
      : interval_(interval), run_(std::move(run)) {}
  ~PeriodicTask() { Stop(); }
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_) {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stop_), interval_);
        if (stop_) return;
      }
      run_();
    }
  }

  const absl::Duration interval_;
  const std::function<void()> run_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace devmem
