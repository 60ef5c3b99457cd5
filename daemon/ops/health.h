#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/base/clock.h"

namespace devmem {

// What /healthz, /readyz, the D-Bus State property and the
// devmemd_health_state metric report.
//   starting  recovery and NIC profiles not done yet (503)
//   ready     serving, nothing wrong (200)
//   degraded  serving, with reasons: a NIC drifted from its profile, a
//             profile failed, the journal refuses new work (200; the body
//             says why)
//   failed    not serving: stopping, or a probe says it cannot work (503)
enum class HealthState { kStarting, kReady, kDegraded, kFailed };

// "starting", "ready", "degraded", "failed".
const char* HealthStateName(HealthState state);

struct HealthIssue {
  // Stable key, e.g. "nic/dm-a" or "journal": the issue's `since` is kept
  // while the same key is reported on consecutive checks.
  std::string key;
  std::string message;
  bool fatal = false;  // failed rather than degraded
};

struct HealthReason {
  std::string key;
  std::string message;
  bool fatal = false;
  absl::Time since;
};

struct HealthReport {
  HealthState state = HealthState::kStarting;
  absl::Time state_since;  // when `state` was entered
  absl::Time started;      // when the monitor was made (process start)
  absl::Time checked;      // when this report was made
  std::vector<HealthReason> reasons;  // sorted by key

  // {"state":"degraded","since":"2026-...Z","started":...,"checked":...,
  //  "uptime_seconds":12.5,"reasons":[{"component":"nic/dm-a",
  //  "message":"...","severity":"degraded","since":"..."}]}
  std::string ToJson() const;
  // /healthz: 200 for ready and degraded, 503 for starting and failed.
  int HttpStatus() const;
  // /readyz: 200 only when new work is accepted: ready, or degraded with no
  // fatal reason and no reason under "journal" (the journal refuses work).
  bool AcceptsWork() const;
};

// Collects health from probes (each asked on every Check()), remembers since
// when each reason has been seen, and tells listeners when the state or the
// set of reasons changes. Thread-safe.
class HealthMonitor {
 public:
  using Probe = std::function<std::vector<HealthIssue>()>;
  using Listener = std::function<void(const HealthReport&)>;

  explicit HealthMonitor(const Clock* clock = RealClock::Get());

  // Probes run in Check(), without the monitor's lock held, in the order
  // added. Add them before the monitor is shared between threads.
  void AddProbe(Probe probe);
  // Called after a Check() whose state or reasons differ from the last one,
  // outside the monitor's lock. Add before sharing.
  void AddListener(Listener listener);

  // starting -> serving (ready/degraded by the probes) -> stopping (failed,
  // reason "daemon: stopping").
  void SetServing();
  void SetStopping();

  // Runs every probe and returns the current report.
  HealthReport Check();

 private:
  const Clock* clock_;
  std::vector<Probe> probes_;
  std::vector<Listener> listeners_;
  absl::Mutex check_mu_;  // one Check() at a time, listeners in order
  mutable absl::Mutex mu_;
  enum class Phase { kStarting, kServing, kStopping };
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kStarting;
  absl::Time started_;
  HealthState state_ ABSL_GUARDED_BY(mu_) = HealthState::kStarting;
  absl::Time state_since_ ABSL_GUARDED_BY(mu_);
  // key -> since, for the reasons of the last check.
  absl::flat_hash_map<std::string, absl::Time> since_ ABSL_GUARDED_BY(mu_);
  std::string last_signature_ ABSL_GUARDED_BY(check_mu_);
};

}  // namespace devmem
