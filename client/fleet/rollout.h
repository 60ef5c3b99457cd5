#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/fleet/connections.h"
#include "client/fleet/fleet_cli.pb.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem::fleetctl {

// A NIC profile rolled out across hosts, commit-confirmed, in waves: the
// canary hosts first, then max_unavailable at a time. In each wave every
// host applies the profile (devmemd reverts it by itself unless confirmed),
// waits `settle`, and is checked (host health "ready"; the NIC applied, not
// degraded). A healthy wave is confirmed; the first unhealthy or failed host
// stops the rollout and its wave's unconfirmed hosts revert at once.
class ProfileRollout {
 public:
  struct Options {
    devmem::v1::NicProfile profile;
    size_t canary = 1;
    size_t max_unavailable = 1;
    absl::Duration confirm_within = absl::Seconds(60);
    absl::Duration settle = absl::Seconds(5);
    absl::Duration timeout = absl::Seconds(10);  // per call
    // Drain each host first (its jobs end; it is cordoned), up to
    // drain_deadline, and uncordon it afterwards if it was not cordoned.
    bool drain = false;
    absl::Duration drain_deadline = absl::Minutes(5);
  };
  ProfileRollout(Connections* conns, Options options)
      : conns_(conns), o_(std::move(options)) {}

  // Runs every wave until the end or the first failure; one line per step
  // to `log` (may be null) as it happens.
  fleetcli::Report Run(FILE* log);

 private:
  // The wave [first, first+n): apply, settle, check, then confirm or
  // revert. False if it stopped the rollout (report.stopped says why).
  bool RunWave(int wave, size_t first, size_t n, fleetcli::Report* report);
  void Apply(size_t i, fleetcli::HostResult* r, bool* was_cordoned);
  // "healthy", or why the host or its NIC is not.
  std::string CheckHealth(size_t i);
  void Confirm(size_t i, fleetcli::HostResult* r);
  void Revert(size_t i, fleetcli::HostResult* r);
  void Uncordon(size_t i, fleetcli::HostResult* r);
  void Log(const fleetcli::HostResult& r, const std::string& what);

  Connections* conns_;
  const Options o_;
  FILE* log_ = nullptr;
  absl::Mutex log_mu_;
};

}  // namespace devmem::fleetctl
