#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/base/clock.h"
#include "daemon/nic/change_recorder.h"
#include "daemon/nic/nic_profiles.h"
#include "daemon/nic/restorer.h"
#include "daemon/state/event_log.h"
#include "proto/devmem/v1/devmem.pb.h"
#include "proto/devmem/v1/journal.pb.h"

namespace devmem {

// Changes a managed NIC's profile at run time, commit-confirmed: Apply puts
// the new profile in force and remembers the previous one; unless Confirm
// comes by the deadline, Expire puts the previous one back by itself. Each
// step is journaled before the NIC is touched, so a restart in between
// still reverts (Prepare). Holds the pending changes; NicManager's lock is
// held around every call.
class ProfileChanger {
 public:
  struct Deps {
    NicProfiles* profiles = nullptr;
    Restorer* restorer = nullptr;
    ChangeRecorder* recorder = nullptr;
    const Clock* clock = nullptr;
    EventLog* events = nullptr;  // may be null
  };
  explicit ProfileChanger(const Deps& deps) : d_(deps) {}

  // At start, before the profiles are applied: each NIC's profile in force
  // from the journal, and its pending change kept (still in time) or turned
  // back (past its deadline). One line per NIC it touched, for the log.
  std::vector<std::string> Prepare(const devmem::v1::JournalState& state);

  // NOT_FOUND: not a managed NIC. FAILED_PRECONDITION: a change is already
  // pending there, or queues are bound or reserved (drain first), or the
  // new profile did not apply (the previous one is back). INVALID_ARGUMENT:
  // confirm_within_s out of 1..3600. The profile itself is checked by the
  // caller (daemon/config.h CheckProfile).
  absl::StatusOr<devmem::v1::PendingProfileChange> Apply(
      const devmem::v1::ApplyProfileRequest& req, const std::string& by);
  // NOT_FOUND: no such pending change on that NIC.
  absl::Status Confirm(const devmem::v1::ConfirmProfileRequest& req);
  // Puts the previous profile back now. NOT_FOUND as Confirm;
  // FAILED_PRECONDITION: it cannot be turned back yet (queues reserved on
  // the new profile); the change stays pending.
  absl::Status Revert(const devmem::v1::RevertProfileRequest& req);
  // Puts back the previous profile of every change past its deadline; one
  // line each. A NIC that cannot be turned back yet (queues reserved on the
  // new profile) is tried again at the next call.
  std::vector<std::string> Expire();

  // The NIC's pending change, or null.
  const devmem::v1::PendingProfileChange* PendingFor(
      const std::string& nic) const;

 private:
  // Puts the NIC's recorded original back, then applies `to`.
  absl::Status Switch(NicRecord& nic, const devmem::v1::NicProfile& to);
  absl::Status Finish(const devmem::v1::PendingProfileChange& change,
                      bool confirmed);
  // The pending change on req's NIC with req's id, or NOT_FOUND.
  template <typename Req>
  absl::StatusOr<
      std::map<std::string, devmem::v1::PendingProfileChange>::iterator>
  FindPending(const Req& req);
  // Switches the NIC back to the change's previous profile and ends the
  // change (journaled, published with `why`).
  absl::Status TurnBack(const devmem::v1::PendingProfileChange& change,
                        const std::string& why);
  void Publish(const std::string& nic, const std::string& detail) const;

  const Deps d_;
  std::map<std::string, devmem::v1::PendingProfileChange> pending_;
};

}  // namespace devmem
