#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/devmemd_link.h"
#include "agent/heap_trimmer.h"
#include "agent/host_view.h"
#include "agent/roles.h"
#include "agent/stream_guard.h"
#include "agent/tls_listener.h"
#include "proto/fleet/v1/fleet.grpc.pb.h"

namespace devmem::agent {

// fleet.v1.Fleet: authorizes each call by the caller's certificate identity
// and role, then relays it to devmemd's admin API as that identity (the
// owner of its reservations, the "by" of a cordon). Launchers act on their
// own reservations; operators may release anyone's and change NIC profiles.
class FleetService final : public fleet::v1::Fleet::Service {
 public:
  struct Deps {
    const PeerIdentities* peers;
    DevmemdLink* link;
    const HostView* host;
    StreamGuard* streams;
    HeapTrimmer* trimmer;  // may be null
  };
  FleetService(Deps deps, RoleTable roles);

  // SIGHUP: the roles of a reloaded config (calls in flight keep theirs).
  void SetRoles(RoleTable roles) ABSL_LOCKS_EXCLUDED(mu_);

  grpc::Status GetHost(grpc::ServerContext* ctx,
                       const fleet::v1::GetHostRequest* req,
                       fleet::v1::Host* resp) override;
  grpc::Status Reserve(grpc::ServerContext* ctx,
                       const fleet::v1::ReserveRequest* req,
                       devmem::v1::ReserveResponse* resp) override;
  grpc::Status Renew(grpc::ServerContext* ctx,
                     const fleet::v1::RenewRequest* req,
                     devmem::v1::RenewResponse* resp) override;
  grpc::Status Release(grpc::ServerContext* ctx,
                       const fleet::v1::ReleaseRequest* req,
                       devmem::v1::ReleaseReservationResponse* resp) override;
  grpc::Status ListReservations(
      grpc::ServerContext* ctx, const fleet::v1::ListReservationsRequest* req,
      devmem::v1::ListReservationsResponse* resp) override;
  grpc::Status Cordon(grpc::ServerContext* ctx,
                      const fleet::v1::CordonRequest* req,
                      devmem::v1::CordonResponse* resp) override;
  grpc::Status Uncordon(grpc::ServerContext* ctx,
                        const fleet::v1::UncordonRequest* req,
                        devmem::v1::CordonResponse* resp) override;
  grpc::Status Drain(
      grpc::ServerContext* ctx, const fleet::v1::DrainRequest* req,
      grpc::ServerWriter<devmem::v1::DrainProgress>* writer) override;
  grpc::Status Watch(
      grpc::ServerContext* ctx, const fleet::v1::WatchRequest* req,
      grpc::ServerWriter<devmem::v1::WatchResponse>* writer) override;
  grpc::Status ApplyProfile(grpc::ServerContext* ctx,
                            const fleet::v1::ApplyProfileRequest* req,
                            devmem::v1::ApplyProfileResponse* resp) override;
  grpc::Status ConfirmProfile(
      grpc::ServerContext* ctx, const fleet::v1::ConfirmProfileRequest* req,
      devmem::v1::ConfirmProfileResponse* resp) override;
  grpc::Status RevertProfile(grpc::ServerContext* ctx,
                             const fleet::v1::RevertProfileRequest* req,
                             devmem::v1::RevertProfileResponse* resp) override;

 private:
  struct Caller {
    std::string identity;
    Role role;
  };
  absl::StatusOr<Caller> Authorize(grpc::ServerContext* ctx,
                                   FleetMethod method) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Copies devmemd's stream to the client under the stream guard.
  template <typename Msg>
  grpc::Status RelayStream(grpc::ServerContext* ctx,
                           grpc::ClientContext* upstream,
                           grpc::ClientReader<Msg>* reader,
                           grpc::ServerWriter<Msg>* writer);

  // Asks for a heap trim after an answer of at least kLargeAnswerBytes.
  void AfterAnswer(size_t bytes) const;

  Deps deps_;
  mutable absl::Mutex mu_;
  RoleTable roles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace devmem::agent
