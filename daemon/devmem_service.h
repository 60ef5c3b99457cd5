#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/ops/health.h"
#include "daemon/session/grpc_listener.h"
#include "daemon/session/peer_cred.h"
#include "daemon/session/session_manager.h"
#include "daemon/socket_maker.h"
#include "daemon/state/event_log.h"
#include "kernel/nic_inventory.h"
#include "kernel/pci_topology.h"
#include "proto/devmem/v1/config.pb.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

namespace devmem {

// Maps absl codes to gRPC codes one to one (both follow google.rpc.Code).
grpc::Status ToGrpc(const absl::Status& status);

// The devmem.v1.Devmem service. Every call first identifies the peer from the
// daemon-accepted connection (GrpcPeerRegistry) and checks the AccessPolicy;
// session-scoped calls then check the session token. Sockets are created here
// and parked behind tickets in the SessionManager; the client redeems them on
// its session socket. Thread-safe (gRPC calls handlers from many threads).
class DevmemService final : public devmem::v1::Devmem::Service {
 public:
  struct Deps {
    const devmem::v1::DaemonConfig* config;
    const AccessPolicy* policy;
    const GrpcPeerRegistry* peers;
    SessionManager* sessions;
    NicInventory* inventory;
    // NIC profiles, bindings and steering rules.
    NicManager* nics;
    // Changes, for Watch and Drain.
    EventLog* events = nullptr;
    // Where GPUs and NICs sit on PCIe; null: /sys.
    const PciTopology* topology = nullptr;
    // Fds handed off so far (from the session server), for status.
    std::function<uint64_t()> fds_handed_off;
    // The daemon's health (HealthMonitor::Check), for status. May be empty.
    std::function<HealthReport()> health;
    absl::Time started;
    // Facts fixed at start-up (version, kernel release, netlink families and
    // their ops); copied into every GetStatus answer.
    devmem::v1::GetStatusResponse static_status;
  };
  explicit DevmemService(Deps deps);

  grpc::Status GetInventory(grpc::ServerContext* ctx,
                            const devmem::v1::GetInventoryRequest* req,
                            devmem::v1::GetInventoryResponse* resp) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx,
                         const devmem::v1::GetStatusRequest* req,
                         devmem::v1::GetStatusResponse* resp) override;
  grpc::Status Listen(grpc::ServerContext* ctx,
                      const devmem::v1::ListenRequest* req,
                      devmem::v1::SocketResponse* resp) override;
  grpc::Status Connect(grpc::ServerContext* ctx,
                       const devmem::v1::ConnectRequest* req,
                       devmem::v1::SocketResponse* resp) override;
  grpc::Status BindRx(grpc::ServerContext* ctx,
                      const devmem::v1::BindRxRequest* req,
                      devmem::v1::BindResponse* resp) override;
  grpc::Status BindTx(grpc::ServerContext* ctx,
                      const devmem::v1::BindTxRequest* req,
                      devmem::v1::BindResponse* resp) override;
  grpc::Status ReleaseBinding(
      grpc::ServerContext* ctx, const devmem::v1::ReleaseBindingRequest* req,
      devmem::v1::ReleaseBindingResponse* resp) override;
  grpc::Status Steer(grpc::ServerContext* ctx,
                     const devmem::v1::SteerRequest* req,
                     devmem::v1::SteerResponse* resp) override;
  grpc::Status OpenSockets(grpc::ServerContext* ctx,
                           const devmem::v1::OpenSocketsRequest* req,
                           devmem::v1::OpenSocketsResponse* resp) override;
  grpc::Status SteerMany(grpc::ServerContext* ctx,
                         const devmem::v1::SteerManyRequest* req,
                         devmem::v1::SteerManyResponse* resp) override;
  grpc::Status GetNicState(grpc::ServerContext* ctx,
                           const devmem::v1::GetNicStateRequest* req,
                           devmem::v1::GetNicStateResponse* resp) override;
  grpc::Status RestoreNic(grpc::ServerContext* ctx,
                          const devmem::v1::RestoreNicRequest* req,
                          devmem::v1::RestoreNicResponse* resp) override;
  grpc::Status ApplyProfile(grpc::ServerContext* ctx,
                            const devmem::v1::ApplyProfileRequest* req,
                            devmem::v1::ApplyProfileResponse* resp) override;
  grpc::Status ConfirmProfile(
      grpc::ServerContext* ctx, const devmem::v1::ConfirmProfileRequest* req,
      devmem::v1::ConfirmProfileResponse* resp) override;
  grpc::Status RevertProfile(grpc::ServerContext* ctx,
                             const devmem::v1::RevertProfileRequest* req,
                             devmem::v1::RevertProfileResponse* resp) override;
  grpc::Status Reserve(grpc::ServerContext* ctx,
                       const devmem::v1::ReserveRequest* req,
                       devmem::v1::ReserveResponse* resp) override;
  grpc::Status Renew(grpc::ServerContext* ctx,
                     const devmem::v1::RenewRequest* req,
                     devmem::v1::RenewResponse* resp) override;
  grpc::Status ReleaseReservation(
      grpc::ServerContext* ctx,
      const devmem::v1::ReleaseReservationRequest* req,
      devmem::v1::ReleaseReservationResponse* resp) override;
  grpc::Status ListReservations(
      grpc::ServerContext* ctx, const devmem::v1::ListReservationsRequest* req,
      devmem::v1::ListReservationsResponse* resp) override;
  grpc::Status Cordon(grpc::ServerContext* ctx,
                      const devmem::v1::CordonRequest* req,
                      devmem::v1::CordonResponse* resp) override;
  grpc::Status Uncordon(grpc::ServerContext* ctx,
                        const devmem::v1::UncordonRequest* req,
                        devmem::v1::CordonResponse* resp) override;
  grpc::Status Drain(
      grpc::ServerContext* ctx, const devmem::v1::DrainRequest* req,
      grpc::ServerWriter<devmem::v1::DrainProgress>* writer) override;
  grpc::Status Watch(
      grpc::ServerContext* ctx, const devmem::v1::WatchRequest* req,
      grpc::ServerWriter<devmem::v1::WatchResponse>* writer) override;

 private:
  const PciTopology sys_topology_;
  absl::StatusOr<PeerCred> Caller(grpc::ServerContext* ctx) const;
  // Caller check + admin check (uid 0 or admin_uids) for the call `what`;
  // returns the caller as an owner name, "uid:<n>".
  absl::StatusOr<std::string> Admin(grpc::ServerContext* ctx,
                                    absl::string_view what) const;
  // Caller check + token check; returns the session id.
  absl::StatusOr<uint64_t> SessionOf(grpc::ServerContext* ctx,
                                     const std::string& token) const;
  // Puts a copy of the binding's anchor behind resp->anchor_ticket.
  void ShareAnchor(uint64_t session, const devmem::v1::Binding& binding,
                   devmem::v1::BindResponse* resp);

  Deps deps_;
  SocketMaker sockets_;
};

}  // namespace devmem
