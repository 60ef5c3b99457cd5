#include "daemon/devmem_service.h"

#include <sys/socket.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/inventory_proto.h"
#include "daemon/socket_broker.h"

namespace devmem {
namespace {

int FamilyOf(devmem::v1::AddressFamily f) {
  switch (f) {
    case devmem::v1::ADDRESS_FAMILY_INET:
      return AF_INET;
    case devmem::v1::ADDRESS_FAMILY_INET6:
      return AF_INET6;
    default:
      return AF_UNSPEC;
  }
}

void FillAddress(const SockAddr& a, devmem::v1::SocketAddress* out) {
  out->set_ip(AddressIp(a));
  out->set_port(AddressPort(a));
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode both enumerate google.rpc.Code.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      absl::StrCat(status.message()));
}

DevmemService::DevmemService(Deps deps) : deps_(std::move(deps)) {}

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
  if (req->nic_names().empty()) {
    auto nics = deps_.inventory->List();
    if (!nics.ok()) return ToGrpc(nics.status());
    for (const NicInfo& n : *nics) *resp->add_nics() = NicToProto(n);
    return grpc::Status::OK;
  }
  for (const std::string& name : req->nic_names()) {
    auto nic = deps_.inventory->Get(name);
    if (!nic.ok()) return ToGrpc(nic.status());
    *resp->add_nics() = NicToProto(*nic);
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
  return grpc::Status::OK;
}

absl::Status DevmemService::Park(uint64_t session, UniqueFd fd,
                                 const std::string& nic, uint32_t ifindex,
                                 devmem::v1::SocketResponse* resp) {
  auto local = LocalAddress(fd.get_unowned());
  if (local.ok()) FillAddress(*local, resp->mutable_local());
  auto ticket = deps_.sessions->IssueTicket(session, std::move(fd));
  if (!ticket.ok()) return ticket.status();
  resp->set_ticket(*ticket);
  resp->set_ticket_ttl_ms(static_cast<uint32_t>(
      absl::ToInt64Milliseconds(deps_.sessions->ticket_ttl())));
  resp->set_nic(nic);
  resp->set_ifindex(ifindex);
  return absl::OkStatus();
}

grpc::Status DevmemService::Listen(grpc::ServerContext* ctx,
                                   const devmem::v1::ListenRequest* req,
                                   devmem::v1::SocketResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  if (req->nic().empty()) {
    return ToGrpc(absl::InvalidArgumentError(
        "nic is required: name the interface the socket is bound to"));
  }
  auto ifindex = deps_.inventory->IfIndex(req->nic());
  if (!ifindex.ok()) return ToGrpc(ifindex.status());
  auto local = ParseSockAddr(req->local().ip(), req->local().port(),
                             FamilyOf(req->family()));
  if (!local.ok()) return ToGrpc(local.status());
  if (req->backlog() > 65535) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat(
        "backlog ", req->backlog(), " is out of range [0, 65535]")));
  }
  const int backlog = req->backlog() != 0
                          ? static_cast<int>(req->backlog())
                          : static_cast<int>(deps_.config->default_backlog());
  auto fd = CreateBoundListener(req->nic(), *local, backlog);
  if (!fd.ok()) return ToGrpc(fd.status());
  return ToGrpc(Park(*session, std::move(*fd), req->nic(), *ifindex, resp));
}

grpc::Status DevmemService::Connect(grpc::ServerContext* ctx,
                                    const devmem::v1::ConnectRequest* req,
                                    devmem::v1::SocketResponse* resp) {
  auto session = SessionOf(ctx, req->session_token());
  if (!session.ok()) return ToGrpc(session.status());
  if (req->nic().empty()) {
    return ToGrpc(absl::InvalidArgumentError(
        "nic is required: name the interface the socket is bound to"));
  }
  auto ifindex = deps_.inventory->IfIndex(req->nic());
  if (!ifindex.ok()) return ToGrpc(ifindex.status());
  if (req->remote().ip().empty() || req->remote().port() == 0) {
    return ToGrpc(absl::InvalidArgumentError(
        "remote.ip and remote.port are required for Connect"));
  }
  auto remote =
      ParseSockAddr(req->remote().ip(), req->remote().port(), AF_UNSPEC);
  if (!remote.ok()) return ToGrpc(remote.status());
  SockAddr local;
  if (req->has_local() &&
      (!req->local().ip().empty() || req->local().port() != 0)) {
    auto parsed =
        ParseSockAddr(req->local().ip(), req->local().port(), remote->family());
    if (!parsed.ok()) return ToGrpc(parsed.status());
    local = *parsed;
  }
  const uint32_t timeout_ms = req->timeout_ms() != 0
                                  ? req->timeout_ms()
                                  : deps_.config->default_connect_timeout_ms();
  auto fd = CreateBoundConnected(req->nic(), *remote, &local,
                                 absl::Milliseconds(timeout_ms));
  if (!fd.ok()) return ToGrpc(fd.status());
  auto peer = PeerAddress(fd->get_unowned());
  if (peer.ok()) FillAddress(*peer, resp->mutable_remote());
  return ToGrpc(Park(*session, std::move(*fd), req->nic(), *ifindex, resp));
}

}  // namespace devmem
