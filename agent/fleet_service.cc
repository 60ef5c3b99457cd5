#include "agent/fleet_service.h"

#include "absl/strings/str_cat.h"
#include "agent/drain_wait.h"

namespace devmem::agent {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  // absl::StatusCode and grpc::StatusCode both enumerate google.rpc.Code.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string{s.message()});
}

}  // namespace

FleetService::FleetService(Deps deps, RoleTable roles)
    : deps_(deps), roles_(std::move(roles)) {}

void FleetService::AfterAnswer(size_t bytes) const {
  if (deps_.trimmer != nullptr && bytes >= HeapTrimmer::kLargeAnswerBytes) {
    deps_.trimmer->Request();
  }
}

void FleetService::SetRoles(RoleTable roles) {
  absl::MutexLock lock(&mu_);
  roles_ = std::move(roles);
}

absl::StatusOr<FleetService::Caller> FleetService::Authorize(
    grpc::ServerContext* ctx, FleetMethod method) const {
  auto identity = deps_.peers->Lookup(ctx->peer());
  if (!identity.has_value()) {
    // Only connections the TLS listener verified are handed to gRPC.
    return absl::UnauthenticatedError(absl::StrCat(
        "no verified client certificate for peer \"", ctx->peer(), "\""));
  }
  absl::MutexLock lock(&mu_);
  absl::Status allowed = roles_.Check(*identity, method);
  if (!allowed.ok()) return allowed;
  return Caller{*identity, roles_.RoleOf(*identity)};
}

grpc::Status FleetService::GetHost(grpc::ServerContext* ctx,
                                   const fleet::v1::GetHostRequest* /*req*/,
                                   fleet::v1::Host* resp) {
  auto who = Authorize(ctx, FleetMethod::kGetHost);
  if (!who.ok()) return ToGrpc(who.status());
  *resp = deps_.host->Get();
  resp->set_caller_identity(who->identity);
  resp->set_caller_role(RoleName(who->role));
  return grpc::Status::OK;
}

grpc::Status FleetService::Reserve(grpc::ServerContext* ctx,
                                   const fleet::v1::ReserveRequest* req,
                                   devmem::v1::ReserveResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kReserve);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::ReserveRequest up;
  up.set_job_id(req->job_id());
  up.set_request_id(req->request_id());
  *up.mutable_items() = req->items();
  up.set_ttl_s(req->ttl_s());
  if (req->has_redeemer_uid()) up.set_redeemer_uid(req->redeemer_uid());
  up.set_owner(who->identity);
  return deps_.link->Relay(
      deps_.link->stub()->Reserve(deps_.link->UnaryContext().get(), up, resp));
}

grpc::Status FleetService::Renew(grpc::ServerContext* ctx,
                                 const fleet::v1::RenewRequest* req,
                                 devmem::v1::RenewResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kRenew);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::RenewRequest up;
  up.set_id(req->id());
  up.set_ttl_s(req->ttl_s());
  up.set_owner(who->identity);  // everyone renews only their own
  return deps_.link->Relay(
      deps_.link->stub()->Renew(deps_.link->UnaryContext().get(), up, resp));
}

grpc::Status FleetService::Release(
    grpc::ServerContext* ctx, const fleet::v1::ReleaseRequest* req,
    devmem::v1::ReleaseReservationResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kRelease);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::ReleaseReservationRequest up;
  up.set_id(req->id());
  up.set_job_id(req->job_id());
  up.set_request_id(req->request_id());
  up.set_owner(who->identity);
  up.set_any_owner(who->role == Role::kOperator);
  return deps_.link->Relay(deps_.link->stub()->ReleaseReservation(
      deps_.link->UnaryContext().get(), up, resp));
}

grpc::Status FleetService::ListReservations(
    grpc::ServerContext* ctx, const fleet::v1::ListReservationsRequest* req,
    devmem::v1::ListReservationsResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kListReservations);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::ListReservationsRequest up;
  up.set_job_id(req->job_id());
  grpc::Status s = deps_.link->Relay(deps_.link->stub()->ListReservations(
      deps_.link->UnaryContext().get(), up, resp));
  AfterAnswer(resp->ByteSizeLong());
  return s;
}

grpc::Status FleetService::Cordon(grpc::ServerContext* ctx,
                                  const fleet::v1::CordonRequest* req,
                                  devmem::v1::CordonResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kCordon);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::CordonRequest up;
  up.set_reason(req->reason());
  up.set_by(who->identity);
  return deps_.link->Relay(
      deps_.link->stub()->Cordon(deps_.link->UnaryContext().get(), up, resp));
}

grpc::Status FleetService::Uncordon(grpc::ServerContext* ctx,
                                    const fleet::v1::UncordonRequest* /*req*/,
                                    devmem::v1::CordonResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kUncordon);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::UncordonRequest up;
  up.set_by(who->identity);
  return deps_.link->Relay(
      deps_.link->stub()->Uncordon(deps_.link->UnaryContext().get(), up, resp));
}

template <typename Msg>
grpc::Status FleetService::RelayStream(grpc::ServerContext* ctx,
                                       grpc::ClientContext* upstream,
                                       grpc::ClientReader<Msg>* reader,
                                       grpc::ServerWriter<Msg>* writer) {
  auto admitted = deps_.streams->Admit(ctx, upstream);
  if (!admitted.ok()) {
    upstream->TryCancel();
    reader->Finish();
    return ToGrpc(admitted.status());
  }
  StreamGuard::Stream& guard = **admitted;
  Msg msg;
  while (reader->Read(&msg)) {
    guard.WriteStarted();
    const bool written = writer->Write(msg);
    guard.WriteDone();
    AfterAnswer(msg.ByteSizeLong());
    if (!written) {
      upstream->TryCancel();
      reader->Finish();
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          "the client stopped reading the stream");
    }
  }
  if (ctx->IsCancelled()) {
    reader->Finish();
    return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
  }
  return deps_.link->Relay(reader->Finish());
}

grpc::Status FleetService::Drain(
    grpc::ServerContext* ctx, const fleet::v1::DrainRequest* req,
    grpc::ServerWriter<devmem::v1::DrainProgress>* writer) {
  auto who = Authorize(ctx, FleetMethod::kDrain);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::DrainRequest up;
  up.set_reason(req->reason());
  up.set_by(who->identity);
  up.set_deadline_s(req->deadline_s());
  up.set_release_at_deadline(req->release_at_deadline());
  auto upstream = DevmemdLink::StreamContext();
  auto reader = deps_.link->stub()->Drain(upstream.get(), up);
  return RelayStream(ctx, upstream.get(), reader.get(), writer);
}

grpc::Status FleetService::Watch(
    grpc::ServerContext* ctx, const fleet::v1::WatchRequest* req,
    grpc::ServerWriter<devmem::v1::WatchResponse>* writer) {
  auto who = Authorize(ctx, FleetMethod::kWatch);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::WatchRequest up;
  up.set_since_revision(req->since_revision());
  auto upstream = DevmemdLink::StreamContext();
  auto reader = deps_.link->stub()->Watch(upstream.get(), up);
  return RelayStream(ctx, upstream.get(), reader.get(), writer);
}

grpc::Status FleetService::ApplyProfile(
    grpc::ServerContext* ctx, const fleet::v1::ApplyProfileRequest* req,
    devmem::v1::ApplyProfileResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kApplyProfile);
  if (!who.ok()) return ToGrpc(who.status());
  if (req->profile().nic().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "profile.nic is required: the NIC to change");
  }
  if (req->drain_first()) {
    grpc::Status drained =
        DrainAndWait(deps_.link, ctx, who->identity, req->drain_deadline_s());
    if (!drained.ok()) return drained;
  }
  devmem::v1::ApplyProfileRequest up;
  *up.mutable_profile() = req->profile();
  up.set_confirm_within_s(req->confirm_within_s());
  up.set_by(who->identity);
  return deps_.link->Relay(deps_.link->stub()->ApplyProfile(
      deps_.link->UnaryContext().get(), up, resp));
}

grpc::Status FleetService::ConfirmProfile(
    grpc::ServerContext* ctx, const fleet::v1::ConfirmProfileRequest* req,
    devmem::v1::ConfirmProfileResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kConfirmProfile);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::ConfirmProfileRequest up;
  up.set_nic(req->nic());
  up.set_change_id(req->change_id());
  return deps_.link->Relay(deps_.link->stub()->ConfirmProfile(
      deps_.link->UnaryContext().get(), up, resp));
}

grpc::Status FleetService::RevertProfile(
    grpc::ServerContext* ctx, const fleet::v1::RevertProfileRequest* req,
    devmem::v1::RevertProfileResponse* resp) {
  auto who = Authorize(ctx, FleetMethod::kRevertProfile);
  if (!who.ok()) return ToGrpc(who.status());
  devmem::v1::RevertProfileRequest up;
  up.set_nic(req->nic());
  up.set_change_id(req->change_id());
  return deps_.link->Relay(deps_.link->stub()->RevertProfile(
      deps_.link->UnaryContext().get(), up, resp));
}

}  // namespace devmem::agent
