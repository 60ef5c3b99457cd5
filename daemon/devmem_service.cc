#include "daemon/devmem_service.h"

#include <sys/socket.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/admin_streams.h"
#include "daemon/config.h"
#include "daemon/nic/gpu_affinity.h"
#include "daemon/nic/inventory_proto.h"
#include "daemon/socket_maker.h"

namespace devmem {
namespace {}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode both enumerate google.rpc.Code.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      absl::StrCat(status.message()));
}

DevmemService::DevmemService(Deps deps)
    : deps_(std::move(deps)),
      sockets_(SocketMaker::Deps{deps_.config, deps_.sessions, deps_.inventory,
                                 deps_.nics}) {}

absl::StatusOr<PeerCred> DevmemService::Caller(grpc::ServerContext* ctx) const {
  auto cred = deps_.peers->Lookup(ctx->peer());
  if (!cred.has_value()) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot identify the caller (peer \"", ctx->peer(),
                     "\"); connect through devmemd's gRPC Unix socket"));
  }
  absl::Status allowed = deps_.policy->Check(*cred);
  if (!allowed.ok()) return allowed;
  return *cred;
}

absl::StatusOr<std::string> DevmemService::Admin(grpc::ServerContext* ctx,
                                                 absl::string_view what) const {
  auto caller = Caller(ctx);
  if (!caller.ok()) return caller.status();
  const auto& admins = deps_.config->admin_uids();
  if (caller->uid != 0 &&
      std::find(admins.begin(), admins.end(), caller->uid) == admins.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " is an admin call; uid ", caller->uid,
                     " is neither 0 nor listed in admin_uids"));
  }
  return absl::StrCat("uid:", caller->uid);
}

absl::StatusOr<uint64_t> DevmemService::SessionOf(
    grpc::ServerContext* ctx, const std::string& token) const {
  auto caller = Caller(ctx);
  if (!caller.ok()) return caller.status();
  return deps_.sessions->Authorize(token, *caller);
}

grpc::Status DevmemService::GetInventory(
    grpc::ServerContext* ctx, const devmem::v1::GetInventoryRequest* req,
    devmem::v1::GetInventoryResponse* resp) {
  auto caller = Caller(ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  resp->set_backend(deps_.inventory->BackendName());
  std::vector<NicInfo> nics;
  if (req->nic_names().empty()) {
    auto all = deps_.inventory->List();
    if (!all.ok()) return ToGrpc(all.status());
    nics = *std::move(all);
  }
  for (const std::string& name : req->nic_names()) {
    auto nic = deps_.inventory->Get(name);
    if (!nic.ok()) return ToGrpc(nic.status());
    nics.push_back(*std::move(nic));
  }
  for (const NicInfo& n : nics) *resp->add_nics() = NicToProto(n);
  const PciTopology& topology =
      deps_.topology != nullptr ? *deps_.topology : sys_topology_;
  auto gpus = topology.Accelerators();
  if (!gpus.ok()) return ToGrpc(gpus.status());
  for (const PciDevice& g : *gpus) {
    devmem::v1::Gpu* out = resp->add_gpus();
    out->set_pci_address(g.address);
    out->set_vendor_id(g.vendor);
    out->set_device_id(g.device);
    out->set_pci_class(g.pci_class);
    out->set_driver(g.driver);
    out->set_numa_node(g.numa_node);
    for (const NicInfo& n : nics) {
      devmem::v1::GpuNicDistance* d = resp->add_topology();
      d->set_gpu(g.address);
      d->set_nic(n.link.name);
      d->set_distance(PciDistanceName(GpuNicDistance(g, n, topology)));
    }
  }
  return grpc::Status::OK;
}

grpc::Status DevmemService::GetStatus(grpc::ServerContext* ctx,
                                      const devmem::v1::GetStatusRequest* req,
                                      devmem::v1::GetStatusResponse* resp) {
  auto caller = Caller(ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  *resp = deps_.static_status;
  resp->set_uptime_seconds(absl::ToDoubleSeconds(absl::Now() - deps_.started));
  resp->set_sessions(static_cast<uint32_t>(deps_.sessions->session_count()));
  resp->set_pending_tickets(
      static_cast<uint32_t>(deps_.sessions->pending_tickets()));
  resp->set_backend(deps_.inventory->BackendName());
  if (deps_.fds_handed_off) resp->set_fds_handed_off(deps_.fds_handed_off());
  resp->set_peer_uid(caller->uid);
  resp->set_peer_gid(caller->gid);
  resp->set_detached_sessions(
      static_cast<uint32_t>(deps_.sessions->detached_count()));
  resp->set_bindings(static_cast<uint32_t>(deps_.nics->binding_count()));
  resp->set_rules(static_cast<uint32_t>(deps_.nics->rule_count()));
  for (std::string& line : deps_.nics->CheckHealth()) {
    resp->add_degraded(std::move(line));
  }
  resp->set_journal_error(deps_.nics->journal_error());
  resp->set_journal_durability(deps_.nics->journal_durability());
  resp->set_journal_syncs(deps_.nics->journal_syncs());
  *resp->mutable_cordon() = deps_.nics->cordon_state();
  const NicManager::HostFigures host = deps_.nics->HostMetrics();
  resp->set_reservations_active(host.reservations_active);
  resp->set_reservations_expired(host.reservations_expired);
  if (deps_.health) {
    const HealthReport report = deps_.health();
    resp->set_health(HealthStateName(report.state));
    for (const HealthReason& r : report.reasons) {
      resp->add_health_reasons(absl::StrCat(r.key, ": ", r.message));
    }
  }
  return grpc::Status::OK;
}

grpc::Status DevmemService::Listen(grpc::ServerContext* ctx,
                                   const devmem::v1::ListenRequest* req,
                                   devmem::v1::SocketResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  return ToGrpc(sockets_.Listen(*session, *req, resp));
}

grpc::Status DevmemService::Connect(grpc::ServerContext* ctx,
                                    const devmem::v1::ConnectRequest* req,
                                    devmem::v1::SocketResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  return ToGrpc(sockets_.Connect(*session, *req, resp));
}

grpc::Status DevmemService::Steer(grpc::ServerContext* ctx,
                                  const devmem::v1::SteerRequest* req,
                                  devmem::v1::SteerResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  return ToGrpc(sockets_.Steer(*session, *req, resp->mutable_rule()));
}

grpc::Status DevmemService::OpenSockets(
    grpc::ServerContext* ctx, const devmem::v1::OpenSocketsRequest* req,
    devmem::v1::OpenSocketsResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  return ToGrpc(sockets_.OpenSockets(*session, *req, resp));
}

grpc::Status DevmemService::SteerMany(grpc::ServerContext* ctx,
                                      const devmem::v1::SteerManyRequest* req,
                                      devmem::v1::SteerManyResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  return ToGrpc(sockets_.SteerMany(*session, *req, resp));
}

void DevmemService::ShareAnchor(uint64_t session,
                                const devmem::v1::Binding& binding,
                                devmem::v1::BindResponse* resp) {
  // The workload's copy keeps the binding alive across a daemon restart. A
  // backend without anchors (or a full ticket table) leaves it empty; the
  // binding still works, it just does not survive the daemon.
  auto anchor = deps_.nics->DupAnchor(session, binding.handle());
  if (!anchor.ok()) return;
  auto ticket = deps_.sessions->IssueAnchorTicket(session, binding.handle(),
                                                  *std::move(anchor));
  if (ticket.ok()) resp->set_anchor_ticket(*ticket);
}

grpc::Status DevmemService::BindRx(grpc::ServerContext* ctx,
                                   const devmem::v1::BindRxRequest* req,
                                   devmem::v1::BindResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  auto fd = SocketMaker::TakeDeposit(deps_.sessions, *session,
                                     req->dmabuf_ticket(), "dmabuf_ticket");
  if (!fd.ok()) return ToGrpc(fd.status());
  auto binding = deps_.nics->BindRx(
      *session, NicManager::Target{req->nic(), req->gpu_pci_address()},
      req->queue_count(), *std::move(fd), req->reservation_token());
  if (!binding.ok()) return ToGrpc(binding.status());
  *resp->mutable_binding() = *binding;
  resp->set_backend(deps_.nics->backend());
  ShareAnchor(*session, *resp->mutable_binding(), resp);
  return grpc::Status::OK;
}

grpc::Status DevmemService::BindTx(grpc::ServerContext* ctx,
                                   const devmem::v1::BindTxRequest* req,
                                   devmem::v1::BindResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  auto fd = SocketMaker::TakeDeposit(deps_.sessions, *session,
                                     req->dmabuf_ticket(), "dmabuf_ticket");
  if (!fd.ok()) return ToGrpc(fd.status());
  auto binding = deps_.nics->BindTx(
      *session, NicManager::Target{req->nic(), req->gpu_pci_address()},
      *std::move(fd), req->reservation_token());
  if (!binding.ok()) return ToGrpc(binding.status());
  *resp->mutable_binding() = *binding;
  resp->set_backend(deps_.nics->backend());
  ShareAnchor(*session, *resp->mutable_binding(), resp);
  return grpc::Status::OK;
}

grpc::Status DevmemService::ReleaseBinding(
    grpc::ServerContext* ctx, const devmem::v1::ReleaseBindingRequest* req,
    devmem::v1::ReleaseBindingResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  auto removed = deps_.nics->ReleaseBinding(*session, req->binding());
  if (!removed.ok()) return ToGrpc(removed.status());
  resp->set_rules_removed(*removed);
  return grpc::Status::OK;
}

grpc::Status DevmemService::GetNicState(
    grpc::ServerContext* ctx, const devmem::v1::GetNicStateRequest* req,
    devmem::v1::GetNicStateResponse* resp) {
  auto caller = Caller(ctx);
  if (!caller.ok()) return ToGrpc(caller.status());
  auto states = deps_.nics->States(
      std::vector<std::string>(req->nics().begin(), req->nics().end()));
  if (!states.ok()) return ToGrpc(states.status());
  for (auto& st : *states) *resp->add_nics() = std::move(st);
  return grpc::Status::OK;
}

grpc::Status DevmemService::RestoreNic(grpc::ServerContext* ctx,
                                       const devmem::v1::RestoreNicRequest* req,
                                       devmem::v1::RestoreNicResponse* resp) {
  auto admin = Admin(ctx, "RestoreNic");
  if (!admin.ok()) return ToGrpc(admin.status());
  if (req->nic().empty()) {
    return ToGrpc(absl::InvalidArgumentError("nic is required"));
  }
  auto restored = deps_.nics->Restore(req->nic());
  if (!restored.ok()) return ToGrpc(restored.status());
  *resp = *std::move(restored);
  return grpc::Status::OK;
}

grpc::Status DevmemService::ApplyProfile(
    grpc::ServerContext* ctx, const devmem::v1::ApplyProfileRequest* req,
    devmem::v1::ApplyProfileResponse* resp) {
  auto admin = Admin(ctx, "ApplyProfile");
  if (!admin.ok()) return ToGrpc(admin.status());
  absl::Status valid = CheckProfile(req->profile(), "profile");
  if (!valid.ok()) return ToGrpc(valid);
  if (req->by().size() > 256) {
    return ToGrpc(absl::InvalidArgumentError("by is over 256 bytes"));
  }
  auto applied =
      deps_.nics->ApplyProfile(*req, req->by().empty() ? *admin : req->by());
  if (!applied.ok()) return ToGrpc(applied.status());
  *resp = *std::move(applied);
  return grpc::Status::OK;
}

grpc::Status DevmemService::ConfirmProfile(
    grpc::ServerContext* ctx, const devmem::v1::ConfirmProfileRequest* req,
    devmem::v1::ConfirmProfileResponse* resp) {
  auto admin = Admin(ctx, "ConfirmProfile");
  if (!admin.ok()) return ToGrpc(admin.status());
  auto confirmed = deps_.nics->ConfirmProfile(*req);
  if (!confirmed.ok()) return ToGrpc(confirmed.status());
  *resp = *std::move(confirmed);
  return grpc::Status::OK;
}

grpc::Status DevmemService::RevertProfile(
    grpc::ServerContext* ctx, const devmem::v1::RevertProfileRequest* req,
    devmem::v1::RevertProfileResponse* resp) {
  auto admin = Admin(ctx, "RevertProfile");
  if (!admin.ok()) return ToGrpc(admin.status());
  auto reverted = deps_.nics->RevertProfile(*req);
  if (!reverted.ok()) return ToGrpc(reverted.status());
  *resp = *std::move(reverted);
  return grpc::Status::OK;
}

grpc::Status DevmemService::Reserve(grpc::ServerContext* ctx,
                                    const devmem::v1::ReserveRequest* req,
                                    devmem::v1::ReserveResponse* resp) {
  auto admin = Admin(ctx, "Reserve");
  if (!admin.ok()) return ToGrpc(admin.status());
  auto made = deps_.nics->Reserve(*req, *admin);
  if (!made.ok()) return ToGrpc(made.status());
  *resp = *std::move(made);
  return grpc::Status::OK;
}

grpc::Status DevmemService::Renew(grpc::ServerContext* ctx,
                                  const devmem::v1::RenewRequest* req,
                                  devmem::v1::RenewResponse* resp) {
  auto admin = Admin(ctx, "Renew");
  if (!admin.ok()) return ToGrpc(admin.status());
  auto renewed = deps_.nics->Renew(*req, *admin);
  if (!renewed.ok()) return ToGrpc(renewed.status());
  *resp->mutable_reservation() = *std::move(renewed);
  return grpc::Status::OK;
}

grpc::Status DevmemService::ReleaseReservation(
    grpc::ServerContext* ctx, const devmem::v1::ReleaseReservationRequest* req,
    devmem::v1::ReleaseReservationResponse* resp) {
  auto admin = Admin(ctx, "ReleaseReservation");
  if (!admin.ok()) return ToGrpc(admin.status());
  auto released = deps_.nics->ReleaseReservation(*req, *admin);
  if (!released.ok()) return ToGrpc(released.status());
  *resp = *std::move(released);
  return grpc::Status::OK;
}

grpc::Status DevmemService::ListReservations(
    grpc::ServerContext* ctx, const devmem::v1::ListReservationsRequest* req,
    devmem::v1::ListReservationsResponse* resp) {
  auto admin = Admin(ctx, "ListReservations");
  if (!admin.ok()) return ToGrpc(admin.status());
  *resp = deps_.nics->ListReservations(*req);
  return grpc::Status::OK;
}

grpc::Status DevmemService::Cordon(grpc::ServerContext* ctx,
                                   const devmem::v1::CordonRequest* req,
                                   devmem::v1::CordonResponse* resp) {
  auto admin = Admin(ctx, "Cordon");
  if (!admin.ok()) return ToGrpc(admin.status());
  auto st =
      deps_.nics->Cordon(req->reason(), req->by().empty() ? *admin : req->by());
  if (!st.ok()) return ToGrpc(st.status());
  *resp->mutable_state() = *std::move(st);
  return grpc::Status::OK;
}

grpc::Status DevmemService::Uncordon(grpc::ServerContext* ctx,
                                     const devmem::v1::UncordonRequest* req,
                                     devmem::v1::CordonResponse* resp) {
  auto admin = Admin(ctx, "Uncordon");
  if (!admin.ok()) return ToGrpc(admin.status());
  auto st = deps_.nics->Uncordon(req->by().empty() ? *admin : req->by());
  if (!st.ok()) return ToGrpc(st.status());
  *resp->mutable_state() = *std::move(st);
  return grpc::Status::OK;
}

grpc::Status DevmemService::Drain(
    grpc::ServerContext* ctx, const devmem::v1::DrainRequest* req,
    grpc::ServerWriter<devmem::v1::DrainProgress>* writer) {
  auto admin = Admin(ctx, "Drain");
  if (!admin.ok()) return ToGrpc(admin.status());
  if (deps_.events == nullptr) {
    return ToGrpc(absl::UnimplementedError("this devmemd keeps no events"));
  }
  // An existing cordon (and its reason) stays; otherwise the drain cordons.
  if (!deps_.nics->cordon_state().cordoned()) {
    auto st =
        deps_.nics->Cordon(req->reason().empty() ? "drain" : req->reason(),
                           req->by().empty() ? *admin : req->by());
    if (!st.ok()) return ToGrpc(st.status());
  }
  return RunDrain(*deps_.nics, *deps_.events, *req, ctx, writer);
}

grpc::Status DevmemService::Watch(
    grpc::ServerContext* ctx, const devmem::v1::WatchRequest* req,
    grpc::ServerWriter<devmem::v1::WatchResponse>* writer) {
  auto admin = Admin(ctx, "Watch");
  if (!admin.ok()) return ToGrpc(admin.status());
  if (deps_.events == nullptr) {
    return ToGrpc(absl::UnimplementedError("this devmemd keeps no events"));
  }
  return RunWatch(*deps_.nics, *deps_.events, *req, ctx, writer);
}

}  // namespace devmem
