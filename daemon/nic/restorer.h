#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/nic/binder.h"
#include "daemon/nic/lease_table.h"
#include "daemon/nic/nic_profiles.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

// Puts NICs back the way devmemd found them: releases their bindings and
// rules, waits briefly for the kernel to unbind, then restores the recorded
// settings. All or nothing: with an anchor held by a workload, or a queue
// still bound, the settings are not touched and the profile stays applied.
// Owns no state (see Binder); NicManager's lock is held around every call.
class Restorer {
 public:
  struct Deps {
    NicProfiles* profiles = nullptr;
    LeaseTable* leases = nullptr;
    Binder* binder = nullptr;
    // How long queues may stay bound after their bindings went (workloads
    // close their copies of the anchors when their sessions end).
    absl::Duration drain = absl::Seconds(2);
  };
  explicit Restorer(const Deps& deps) : d_(deps) {}

  // Restores every applied (or failed) NIC that has a record; one line each.
  std::vector<std::string> RestoreAll();

  // Restores the NIC `name`. NOT_FOUND names the profiles; FAILED_PRECONDITION
  // says what holds the NIC (reserved queues, anchors in workloads' hands;
  // nothing changed); a kernel refusal keeps the record.
  absl::StatusOr<devmem::v1::RestoreNicResponse> Restore(
      absl::string_view name);

  // The NIC's state with its binding and rule counts.
  devmem::v1::NicState State(const NicRecord& nic) const;

 private:
  // Releases, drains and puts back one NIC; counts what went into
  // `*bindings` and `*rules`; `*status` is the outcome, the result its line.
  std::string RestoreOne(NicRecord& nic, uint32_t* bindings, uint32_t* rules,
                         absl::Status* status);

  const Deps d_;
};

}  // namespace devmem
