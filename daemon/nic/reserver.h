#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/base/clock.h"
#include "daemon/nic/change_recorder.h"
#include "daemon/nic/cordon.h"
#include "daemon/nic/lease_table.h"
#include "daemon/nic/nic_profiles.h"
#include "daemon/nic/reservation_table.h"
#include "daemon/state/event_log.h"
#include "proto/devmem/v1/config.pb.h"
#include "proto/devmem/v1/devmem.pb.h"
#include "proto/devmem/v1/journal.pb.h"

namespace devmem {

// Makes and ends reservations: checks a request, takes its queues from the
// NICs' pools (all items or none), journals it (durably, before answering),
// renews, expires and releases it, and checks a token a workload presents.
// Tokens are HMAC-SHA-256 of the reservation id under the host key, so a
// retried Reserve gets the same one; only their hashes are kept. It owns no
// state (the table and pools are NicManager's, whose lock is held around
// every call). Errors are gRPC-meaningful statuses that say what to do.
class Reserver {
 public:
  struct Deps {
    const devmem::v1::DaemonConfig* config = nullptr;
    const Clock* clock = nullptr;
    ChangeRecorder* recorder = nullptr;
    NicProfiles* profiles = nullptr;
    LeaseTable* leases = nullptr;
    ReservationTable* table = nullptr;
    // The host's secret (daemon/state/host_key.h).
    std::string host_key;
    // Refuses new reservations while cordoned; may be null.
    const CordonGate* cordon = nullptr;
    // Where reservation events go; may be null.
    EventLog* events = nullptr;
  };
  explicit Reserver(Deps deps);

  // `caller` is the owner when the request names none ("uid:<n>").
  absl::StatusOr<devmem::v1::ReserveResponse> Reserve(
      const devmem::v1::ReserveRequest& req, const std::string& caller);
  absl::StatusOr<devmem::v1::Reservation> Renew(
      const devmem::v1::RenewRequest& req, const std::string& caller);
  absl::StatusOr<devmem::v1::ReleaseReservationResponse> Release(
      const devmem::v1::ReleaseReservationRequest& req,
      const std::string& caller);
  devmem::v1::ListReservationsResponse List(
      const devmem::v1::ListReservationsRequest& req) const;

  // Expires what is past its deadline (unbound queues go back to the pools)
  // and forgets expired reservations an hour on, once no binding uses them.
  // Returns the ids that expired now.
  std::vector<std::string> Expire();

  // The live reservation `token` names, for a binding by a session of `uid`:
  // INVALID_ARGUMENT (not a token), FAILED_PRECONDITION (another host's, or
  // expired: says when), NOT_FOUND (released or unknown), PERMISSION_DENIED
  // (another redeemer uid).
  absl::StatusOr<ReservationRecord*> Redeem(absl::string_view token,
                                            uint32_t uid);
  // The item of `r` a binding to `target` uses: the one on that NIC or for
  // that GPU; with an empty target, the first with unbound queues.
  absl::StatusOr<const ReservationRecord::Item*> ItemFor(
      const ReservationRecord& r, const NicTarget& target) const;

  // Takes the reservations of an earlier run back (their unbound queues are
  // reserved again in the pools), after the bindings were recovered.
  std::vector<std::string> Recover(const devmem::v1::JournalState& state);

  devmem::v1::Reservation Proto(const ReservationRecord& r) const;
  // "dmr1-<8 hex>": the tag this host's tokens start with.
  const std::string& token_prefix() const { return prefix_; }

 private:
  absl::Status CheckRequest(const devmem::v1::ReserveRequest& req) const;
  // 1..max_reservation_ttl_s, or INVALID_ARGUMENT saying so (and `hint`).
  absl::Status CheckTtl(uint32_t ttl_s, absl::string_view hint) const;
  // Takes the items' queues under `id`; all or nothing.
  absl::StatusOr<std::vector<ReservationRecord::Item>> TakeItems(
      const std::string& id, const devmem::v1::ReserveRequest& req);
  void GiveBack(const ReservationRecord& r);
  std::string TokenFor(const std::string& id) const;
  devmem::v1::JournaledReservation Record(const ReservationRecord& r) const;
  void Publish(const char* type, const ReservationRecord& r) const;
  absl::Status CheckOwner(const ReservationRecord& r, const std::string& owner,
                          bool any_owner, absl::string_view what) const;

  const Deps d_;
  const std::string prefix_;
};

}  // namespace devmem
