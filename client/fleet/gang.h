#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/fleet/connections.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem::fleetctl {

// What to reserve on every host.
struct GangRequest {
  std::string job_id;
  // Idempotency key: a retry of the same job with the same key gets the same
  // reservations (and tokens) back from each host.
  std::string request_id = "devmem-fleet";
  uint32_t queues = 1;
  // One item of `queues` per GPU of the host (from GetHost) instead of one
  // item on a NIC.
  bool per_gpu = false;
  std::string nic;  // empty: the first NIC with enough free queues
  uint32_t ttl_s = 3600;
  absl::Duration host_deadline = absl::Seconds(10);
  size_t in_flight = 64;
  // Attempts when hosts answer RESOURCE_EXHAUSTED (another launcher holds the
  // queues): each rolls back completely, then waits backoff * 2^k, jittered.
  int attempts = 3;
  absl::Duration backoff = absl::Milliseconds(200);
};

struct HostOutcome {
  std::string host;
  bool reserved = false;
  devmem::v1::ReserveResponse response;  // when reserved
  std::string error;                     // when not
  // Rollback: whether Release by job and request id was confirmed here.
  bool rolled_back = false;
};

struct GangResult {
  bool ok = false;
  int attempts = 0;
  std::vector<HostOutcome> hosts;
  // The TTL a leftover reservation of a failed attempt can live at most
  // (where a rollback Release could not be confirmed).
  uint32_t provisional_ttl_s = 0;
};

// All or nothing across every host of `conns`:
//  1. Reserve on all hosts in parallel, each with host_deadline and a
//     short provisional TTL (3 x host_deadline, at least 30 s, at most
//     ttl_s), so a reservation that lands after the launcher gave up
//     expires soon even if nothing can release it.
//  2. All answered: Renew each to ttl_s; done.
//  3. Otherwise: Release by job id and request id on every host (also those
//     that failed or timed out: they may have reserved late; the job's
//     reservations of other requests stay), then, if only contention
//     (RESOURCE_EXHAUSTED) failed it, back off and try again.
// `progress(done, total)` after each host answers (may be empty).
GangResult ReserveAll(Connections* conns, const GangRequest& req,
                      const std::function<void(size_t, size_t)>& progress);

// Release by job id (and request id, if not empty: only that request's
// reservations) on every host; per host "" or the error.
std::vector<std::string> ReleaseAll(Connections* conns,
                                    const std::string& job_id,
                                    const std::string& request_id,
                                    absl::Duration host_deadline,
                                    size_t in_flight,
                                    std::vector<size_t>* released = nullptr);

}  // namespace devmem::fleetctl
