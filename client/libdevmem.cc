#include "client/libdevmem.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <future>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/grpc_status.h"
#include "client/rpc_deadline.h"
#include "client/session_socket.h"
#include "kernel/errno_status.h"
#include "kernel/scm_rights.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {
namespace {

using devmem::v1::SessionFrame;

// The token a binding presents: the options', else $DEVMEM_RESERVATION.
std::string ReservationToken(const BindOptions& options) {
  if (!options.reservation_token.empty()) return options.reservation_token;
  const char* env = std::getenv(kReservationEnv);
  return env != nullptr ? env : "";
}

}  // namespace

Session::Session(UniqueFd session_fd, std::shared_ptr<grpc::Channel> channel,
                 const SessionOptions& options, const devmem::v1::Hello& hello)
    : channel_(std::move(channel)),
      stub_(channel_ ? devmem::v1::Devmem::NewStub(channel_) : nullptr),
      options_(options),
      hello_(hello),
      token_(hello.session_token()),
      watcher_(&HangupWatcher::Shared()),
      session_fd_(std::move(session_fd)) {
  // Sessions with a daemon to go back to watch their socket: a lost session
  // is resumed (auto_reconnect), or its binding anchors are let go so the
  // kernel can unbind.
  if (stub_ != nullptr) {
    const int fd = session_fd_unowned();
    absl::MutexLock lock(&reconnect_mu_);
    watching_ = true;
    WatchSocket(fd);
  }
}

Session::~Session() {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&reconnect_mu_);
    closing_ = true;
    id = std::exchange(watch_id_, 0);
  }
  watcher_->Unwatch(id);  // its callback is not running after this
  std::thread reconnector;
  {
    absl::MutexLock lock(&reconnect_mu_);
    reconnector = std::move(reconnector_);
  }
  if (reconnector.joinable()) reconnector.join();
}

uint64_t Session::session_id() const {
  absl::MutexLock lock(&state_mu_);
  return hello_.session_id();
}

std::string Session::session_token() const {
  absl::MutexLock lock(&state_mu_);
  return token_;
}

devmem::v1::Hello Session::hello() const {
  absl::MutexLock lock(&state_mu_);
  return hello_;
}

int Session::session_fd_unowned() const {
  absl::MutexLock lock(&mu_);
  return session_fd_.get_unowned();
}

std::vector<uint64_t> Session::anchored_bindings() const {
  absl::MutexLock lock(&state_mu_);
  std::vector<uint64_t> out;
  for (const auto& [handle, fd] : anchors_) out.push_back(handle);
  return out;
}

absl::StatusOr<std::unique_ptr<Session>> Session::Open(
    absl::string_view runtime_dir) {
  SessionOptions options;
  options.runtime_dir = std::string(runtime_dir);
  return Open(options);
}

namespace {

// The gRPC channel to the devmemd of `runtime_dir`: one per process while
// any session holds it (a gRPC channel is made to be shared, and a process
// that opens many sessions should not build a channel for each).
std::shared_ptr<grpc::Channel> SharedChannel(const std::string& runtime_dir) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* channels =
      new absl::flat_hash_map<std::string, std::weak_ptr<grpc::Channel>>();
  absl::MutexLock lock(&mu);
  std::weak_ptr<grpc::Channel>& slot = (*channels)[runtime_dir];
  if (std::shared_ptr<grpc::Channel> held = slot.lock()) return held;
  // gRPC's own reconnect backoff grows to minutes; a restarted devmemd must
  // be reached within the grace period.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      absl::StrCat("unix:", runtime_dir, "/grpc.sock"),
      grpc::InsecureChannelCredentials(), args);
  slot = channel;
  return channel;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Session>> Session::Open(
    const SessionOptions& options) {
  absl::StatusOr<UniqueFd> fd = ConnectSessionSocket(options.runtime_dir);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<devmem::v1::Hello> hello =
      ReadHello(fd->get_unowned(), options.frame_timeout);
  if (!hello.ok()) return hello.status();
  return std::unique_ptr<Session>(new Session(
      *std::move(fd), SharedChannel(options.runtime_dir), options, *hello));
}

absl::StatusOr<std::unique_ptr<Session>> Session::FromConnectedSocket(
    UniqueFd session_fd, std::shared_ptr<grpc::Channel> channel,
    const SessionOptions& options) {
  if (!session_fd.valid()) {
    return absl::InvalidArgumentError("FromConnectedSocket: invalid fd");
  }
  absl::StatusOr<devmem::v1::Hello> hello =
      ReadHello(session_fd.get_unowned(), options.frame_timeout);
  if (!hello.ok()) return hello.status();
  SessionOptions own = options;
  own.auto_reconnect = false;  // no socket path to reconnect to
  return std::unique_ptr<Session>(
      new Session(std::move(session_fd), std::move(channel), own, *hello));
}

absl::Status Session::CheckRpcReady() const {
  if (stub_ == nullptr) {
    return absl::FailedPreconditionError(
        "this session has no gRPC channel (created without one)");
  }
  AwaitResume();
  return absl::OkStatus();
}

absl::StatusOr<devmem::v1::GetInventoryResponse> Session::GetInventory(
    absl::Span<const std::string> nic_names) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  devmem::v1::GetInventoryRequest request;
  for (const std::string& name : nic_names) request.add_nic_names(name);
  devmem::v1::GetInventoryResponse response;
  grpc::ClientContext context;
  SetRpcDeadline(context, options_.rpc_timeout, options_.auto_reconnect);
  grpc::Status status = stub_->GetInventory(&context, request, &response);
  if (!status.ok()) return StatusFromGrpc(status);
  return response;
}

absl::StatusOr<devmem::v1::GetStatusResponse> Session::GetStatus() {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  devmem::v1::GetStatusResponse response;
  grpc::ClientContext context;
  SetRpcDeadline(context, options_.rpc_timeout, options_.auto_reconnect);
  grpc::Status status =
      stub_->GetStatus(&context, devmem::v1::GetStatusRequest(), &response);
  if (!status.ok()) return StatusFromGrpc(status);
  return response;
}

absl::StatusOr<SocketHandle> Session::Listen(const ListenOptions& options) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  const devmem::v1::ListenRequest request =
      ListenRequestFor(options, session_token());
  SocketHandle handle;
  grpc::Status status = CallResuming([&](grpc::ClientContext* context) {
    SetRpcDeadline(*context, options_.rpc_timeout, options_.auto_reconnect);
    return stub_->Listen(context, request, &handle.info);
  });
  if (!status.ok()) return StatusFromGrpc(status);
  absl::StatusOr<UniqueFd> fd = Redeem(handle.info.ticket());
  if (!fd.ok()) return fd.status();
  handle.fd = *std::move(fd);
  return handle;
}

absl::StatusOr<SocketHandle> Session::Connect(const ConnectOptions& options) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  const devmem::v1::ConnectRequest request =
      ConnectRequestFor(options, session_token());
  SocketHandle handle;
  // The daemon may spend the whole connect timeout inside the call, so that
  // time is on top of the RPC budget.
  grpc::Status status = CallResuming([&](grpc::ClientContext* context) {
    SetRpcDeadline(*context, options_.rpc_timeout + ConnectTime(request),
                   options_.auto_reconnect);
    return stub_->Connect(context, request, &handle.info);
  });
  if (!status.ok()) return StatusFromGrpc(status);
  absl::StatusOr<UniqueFd> fd = Redeem(handle.info.ticket());
  if (!fd.ok()) return fd.status();
  handle.fd = *std::move(fd);
  return handle;
}

absl::StatusOr<std::vector<absl::StatusOr<SocketHandle>>> Session::OpenSockets(
    absl::Span<const SocketSpec> specs) {
  std::vector<absl::StatusOr<SocketHandle>> out;
  out.reserve(specs.size());
  absl::Status status = OpenSocketsEach(
      specs, [&out](size_t, absl::StatusOr<SocketHandle> result) {
        out.push_back(std::move(result));
      });
  if (!status.ok()) return status;
  return out;
}

absl::Status Session::OpenSocketsEach(absl::Span<const SocketSpec> specs,
                                      OpenedFn on_opened) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  if (specs.empty()) return absl::OkStatus();
  // kOpenSocketsInFlight calls are out at once (made or being redeemed):
  // devmemd makes the next ones on its other threads while this one's
  // sockets are redeemed and handed over.
  const size_t tickets = SocketsPerCall();
  const size_t calls_at_once = std::min(kOpenSocketsInFlight, tickets);
  std::vector<absl::Span<const SocketSpec>> chunks;
  size_t next_spec = 0;
  for (size_t n : OpenSocketsCalls(specs.size(), tickets, calls_at_once)) {
    chunks.push_back(specs.subspan(next_spec, n));
    next_spec += n;
  }
  // One call is made on this thread (deferred: a thread per call costs
  // more than the call's 64 sockets at most).
  const std::launch launch =
      chunks.size() == 1 ? std::launch::deferred : std::launch::async;
  using Answer = absl::StatusOr<devmem::v1::OpenSocketsResponse>;
  std::deque<std::future<Answer>> in_flight;
  size_t started = 0;
  auto start_next = [&] {
    const absl::Span<const SocketSpec> chunk = chunks[started++];
    in_flight.push_back(
        std::async(launch, [this, chunk] { return CallOpenSockets(chunk); }));
  };
  while (started < chunks.size() && in_flight.size() < calls_at_once) {
    start_next();
  }
  size_t first = 0;
  while (!in_flight.empty()) {
    Answer response = in_flight.front().get();
    in_flight.pop_front();
    absl::StatusOr<std::vector<absl::StatusOr<UniqueFd>>> fds =
        response.ok() ? RedeemOpened(*response) : response.status();
    if (!fds.ok()) {
      // Nothing of the calls in flight is left pending: their sockets are
      // redeemed and closed.
      for (std::future<Answer>& late : in_flight) {
        Answer a = late.get();
        if (a.ok()) RedeemOpened(*a).IgnoreError();
      }
      return fds.status();
    }
    // Its tickets are redeemed: the next call may take them.
    if (started < chunks.size()) start_next();
    HandOver(&*response, &*fds, first, on_opened);
    first += static_cast<size_t>(response->results_size());
  }
  return absl::OkStatus();
}

size_t Session::SocketsPerCall() const {
  absl::MutexLock lock(&state_mu_);
  // Every item holds a ticket until RedeemMany: stay within the session's
  // ticket limit (an older daemon does not say it).
  const uint32_t tickets = hello_.max_tickets_per_session();
  return std::clamp<size_t>(tickets == 0 ? kOpenSocketsBatch : tickets, 1,
                            kOpenSocketsBatch);
}

absl::StatusOr<devmem::v1::OpenSocketsResponse> Session::CallOpenSockets(
    absl::Span<const SocketSpec> specs) {
  const devmem::v1::OpenSocketsRequest request =
      OpenSocketsRequestFor(specs, session_token());
  devmem::v1::OpenSocketsResponse response;
  grpc::Status status = CallResuming([&](grpc::ClientContext* context) {
    SetRpcDeadline(*context, options_.rpc_timeout + ConnectTime(request),
                   options_.auto_reconnect);
    return stub_->OpenSockets(context, request, &response);
  });
  if (!status.ok()) return StatusFromGrpc(status);
  if (response.results_size() != static_cast<int>(specs.size())) {
    return absl::InternalError(
        absl::StrCat("devmemd answered OpenSockets of ", specs.size(),
                     " sockets with ", response.results_size(), " results"));
  }
  return response;
}

absl::StatusOr<std::vector<absl::StatusOr<UniqueFd>>> Session::RedeemOpened(
    const devmem::v1::OpenSocketsResponse& response) {
  std::vector<std::string> tickets;
  for (const devmem::v1::SocketResult& r : response.results()) {
    if (r.code() == 0) tickets.push_back(r.socket().ticket());
  }
  return RedeemMany(tickets);
}

void Session::HandOver(devmem::v1::OpenSocketsResponse* response,
                       std::vector<absl::StatusOr<UniqueFd>>* fds, size_t first,
                       OpenedFn on_opened) {
  size_t next = 0;
  size_t index = first;
  for (devmem::v1::SocketResult& r : *response->mutable_results()) {
    if (r.code() != 0) {
      on_opened(index++, absl::Status(static_cast<absl::StatusCode>(r.code()),
                                      r.message()));
      continue;
    }
    absl::StatusOr<UniqueFd>& fd = (*fds)[next++];
    if (!fd.ok()) {
      on_opened(index++, fd.status());
      continue;
    }
    SocketHandle handle;
    handle.fd = *std::move(fd);
    handle.info = std::move(*r.mutable_socket());
    on_opened(index++, std::move(handle));
  }
}

absl::StatusOr<std::vector<absl::StatusOr<devmem::v1::FlowRule>>>
Session::SteerMany(absl::Span<const int> fds, uint64_t binding) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> out;
  out.reserve(fds.size());
  const size_t per_call = SocketsPerCall();
  for (size_t first = 0; first < fds.size(); first += per_call) {
    const size_t n = std::min(per_call, fds.size() - first);
    std::vector<UniqueFd> copies;
    for (int fd : fds.subspan(first, n)) {
      copies.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
      if (!copies.back()) return ErrnoStatus(errno, "dup of a socket to steer");
    }
    auto tickets = DepositMany(std::move(copies));
    if (!tickets.ok()) return tickets.status();
    devmem::v1::SteerManyRequest request;
    request.set_session_token(session_token());
    for (const std::string& ticket : *tickets) {
      devmem::v1::SteerRequest* item = request.add_items();
      item->set_socket_ticket(ticket);
      item->set_binding(binding);
    }
    devmem::v1::SteerManyResponse response;
    grpc::Status status = CallResuming([&](grpc::ClientContext* context) {
      SetRpcDeadline(*context, options_.rpc_timeout, options_.auto_reconnect);
      return stub_->SteerMany(context, request, &response);
    });
    if (!status.ok()) return StatusFromGrpc(status);
    if (response.results_size() != static_cast<int>(n)) {
      return absl::InternalError(
          absl::StrCat("devmemd answered SteerMany of ", n, " sockets with ",
                       response.results_size(), " results"));
    }
    for (devmem::v1::SteerResult& r : *response.mutable_results()) {
      if (r.code() != 0) {
        out.push_back(
            absl::Status(static_cast<absl::StatusCode>(r.code()), r.message()));
      } else {
        out.push_back(std::move(*r.mutable_rule()));
      }
    }
  }
  return out;
}

absl::StatusOr<Session::Reply> Session::Exchange(
    const SessionFrame& request, absl::Span<const int> fds,
    SessionFrame::BodyCase expected) {
  absl::StatusOr<std::string> bytes = EncodeFrame(request);
  if (!bytes.ok()) return bytes.status();  // caller's input, session intact

  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session unusable after an earlier error (open a new session): ",
        broken_.message()));
  }
  absl::Status sent = SendWithFds(session_fd_.get_unowned(), *bytes, fds);
  if (!sent.ok()) {
    // A SEQPACKET send either queues the whole frame or nothing, but an EPIPE
    // means the daemon is gone; either way stop using the socket.
    broken_ = absl::Status(sent.code(),
                           absl::StrCat("sending ", BodyName(request),
                                        " to devmemd: ", sent.message()));
    return broken_;
  }
  absl::StatusOr<SessionReply> reply = ReadFrame(
      session_fd_.get_unowned(), DeadlineAfter(options_.frame_timeout));
  if (!reply.ok()) {
    // The answer may still arrive later and would then be taken as the
    // answer to the next request: the stream is out of step for good.
    broken_ = absl::Status(
        reply.status().code(),
        absl::StrCat("waiting for the answer to ", BodyName(request), ": ",
                     reply.status().message()));
    return broken_;
  }
  // Anything but the expected answer or an Error means the daemon and this
  // client disagree about which request is being answered.
  const SessionFrame::BodyCase body = reply->frame.body_case();
  if (body != expected && body != SessionFrame::kError) {
    broken_ = absl::InternalError(
        absl::StrCat("devmemd answered ", BodyName(request), " with a ",
                     BodyName(reply->frame), " frame"));
    return broken_;
  }
  return Reply{std::move(reply->frame), std::move(reply->fds)};
}

absl::StatusOr<UniqueFd> Session::Redeem(absl::string_view ticket) {
  SessionFrame request;
  request.mutable_redeem()->set_ticket(std::string(ticket));
  absl::StatusOr<Reply> reply = Exchange(request, {}, SessionFrame::kFdGrant);
  if (!reply.ok()) return reply.status();
  if (reply->frame.has_error()) {
    return ErrorFrameStatus(reply->frame.error());
  }
  if (reply->frame.fd_grant().ticket() != ticket) {
    // Answers come in request order, so a grant for another ticket means
    // the exchange is out of step; the fd (if any) is closed with `reply`.
    absl::MutexLock lock(&mu_);
    broken_ = absl::InternalError(absl::StrCat(
        "devmemd granted ticket '", reply->frame.fd_grant().ticket(),
        "' in answer to Redeem of '", ticket, "'"));
    return broken_;
  }
  if (reply->fds.size() != 1) {
    return absl::InternalError(
        absl::StrCat("devmemd's FdGrant for ticket ", ticket, " carried ",
                     reply->fds.size(), " fds; expected exactly 1"));
  }
  return std::move(reply->fds[0]);
}

absl::StatusOr<devmem::v1::Binding> Session::BindRx(
    int dmabuf_fd, const BindOptions& options) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  absl::StatusOr<std::string> ticket = Deposit(dmabuf_fd, "dmabuf");
  if (!ticket.ok()) return ticket.status();
  devmem::v1::BindRxRequest request;
  request.set_session_token(session_token());
  request.set_dmabuf_ticket(*ticket);
  request.set_nic(options.nic);
  request.set_gpu_pci_address(options.gpu_pci_address);
  request.set_queue_count(options.queue_count);
  request.set_reservation_token(ReservationToken(options));
  devmem::v1::BindResponse response;
  grpc::Status status = CallResuming([&](grpc::ClientContext* context) {
    SetRpcDeadline(*context, options_.rpc_timeout, options_.auto_reconnect);
    return stub_->BindRx(context, request, &response);
  });
  if (!status.ok()) return StatusFromGrpc(status);
  KeepAnchor(response);
  return response.binding();
}

absl::StatusOr<devmem::v1::Binding> Session::BindTx(
    int dmabuf_fd, const BindOptions& options) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  absl::StatusOr<std::string> ticket = Deposit(dmabuf_fd, "dmabuf");
  if (!ticket.ok()) return ticket.status();
  devmem::v1::BindTxRequest request;
  request.set_session_token(session_token());
  request.set_dmabuf_ticket(*ticket);
  request.set_nic(options.nic);
  request.set_gpu_pci_address(options.gpu_pci_address);
  request.set_reservation_token(ReservationToken(options));
  devmem::v1::BindResponse response;
  grpc::Status status = CallResuming([&](grpc::ClientContext* context) {
    SetRpcDeadline(*context, options_.rpc_timeout, options_.auto_reconnect);
    return stub_->BindTx(context, request, &response);
  });
  if (!status.ok()) return StatusFromGrpc(status);
  KeepAnchor(response);
  return response.binding();
}

absl::StatusOr<uint32_t> Session::ReleaseBinding(uint64_t binding) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  devmem::v1::ReleaseBindingRequest request;
  request.set_session_token(session_token());
  request.set_binding(binding);
  devmem::v1::ReleaseBindingResponse response;
  grpc::Status status = CallResuming([&](grpc::ClientContext* context) {
    SetRpcDeadline(*context, options_.rpc_timeout, options_.auto_reconnect);
    return stub_->ReleaseBinding(context, request, &response);
  });
  if (status.ok() || status.error_code() == grpc::StatusCode::NOT_FOUND) {
    // Our copy of the anchor must go too, or the kernel binding stays.
    absl::MutexLock lock(&state_mu_);
    anchors_.erase(binding);
  }
  if (!status.ok()) return StatusFromGrpc(status);
  return response.rules_removed();
}

absl::StatusOr<devmem::v1::FlowRule> Session::Steer(int fd, uint64_t binding) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  absl::StatusOr<std::string> ticket = Deposit(fd, "steer");
  if (!ticket.ok()) return ticket.status();
  devmem::v1::SteerRequest request;
  request.set_session_token(session_token());
  request.set_socket_ticket(*ticket);
  request.set_binding(binding);
  devmem::v1::SteerResponse response;
  grpc::Status status = CallResuming([&](grpc::ClientContext* context) {
    SetRpcDeadline(*context, options_.rpc_timeout, options_.auto_reconnect);
    return stub_->Steer(context, request, &response);
  });
  if (!status.ok()) return StatusFromGrpc(status);
  return response.rule();
}

absl::StatusOr<devmem::v1::GetNicStateResponse> Session::GetNicState(
    absl::Span<const std::string> nics) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  devmem::v1::GetNicStateRequest request;
  for (const std::string& n : nics) request.add_nics(n);
  devmem::v1::GetNicStateResponse response;
  grpc::ClientContext context;
  SetRpcDeadline(context, options_.rpc_timeout, options_.auto_reconnect);
  grpc::Status status = stub_->GetNicState(&context, request, &response);
  if (!status.ok()) return StatusFromGrpc(status);
  return response;
}

template <typename Request, typename Response>
absl::StatusOr<Response> Session::Unary(
    grpc::Status (devmem::v1::Devmem::Stub::*method)(grpc::ClientContext*,
                                                     const Request&, Response*),
    const Request& request) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  Response response;
  grpc::ClientContext context;
  SetRpcDeadline(context, options_.rpc_timeout, options_.auto_reconnect);
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return StatusFromGrpc(status);
  return response;
}

absl::StatusOr<devmem::v1::ReserveResponse> Session::Reserve(
    const devmem::v1::ReserveRequest& request) {
  return Unary(&devmem::v1::Devmem::Stub::Reserve, request);
}

absl::StatusOr<devmem::v1::RenewResponse> Session::Renew(
    const devmem::v1::RenewRequest& request) {
  return Unary(&devmem::v1::Devmem::Stub::Renew, request);
}

absl::StatusOr<devmem::v1::ReleaseReservationResponse>
Session::ReleaseReservation(
    const devmem::v1::ReleaseReservationRequest& request) {
  return Unary(&devmem::v1::Devmem::Stub::ReleaseReservation, request);
}

absl::StatusOr<devmem::v1::ListReservationsResponse> Session::ListReservations(
    const devmem::v1::ListReservationsRequest& request) {
  return Unary(&devmem::v1::Devmem::Stub::ListReservations, request);
}

absl::StatusOr<devmem::v1::CordonResponse> Session::Cordon(
    const devmem::v1::CordonRequest& request) {
  return Unary(&devmem::v1::Devmem::Stub::Cordon, request);
}

absl::StatusOr<devmem::v1::CordonResponse> Session::Uncordon(
    const devmem::v1::UncordonRequest& request) {
  return Unary(&devmem::v1::Devmem::Stub::Uncordon, request);
}

template <typename Response>
absl::Status Session::ReadStream(
    grpc::ClientContext& context, grpc::ClientReaderInterface<Response>& reader,
    const std::function<bool(const Response&)>& on) {
  Response message;
  while (reader.Read(&message)) {
    if (!on(message)) {
      context.TryCancel();
      (void)reader.Finish();
      return absl::OkStatus();
    }
  }
  grpc::Status status = reader.Finish();
  return status.ok() ? absl::OkStatus() : StatusFromGrpc(status);
}

absl::Status Session::Drain(
    const devmem::v1::DrainRequest& request,
    const std::function<bool(const devmem::v1::DrainProgress&)>& on) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  grpc::ClientContext context;
  // The drain's own deadline, and some slack for its last word.
  const absl::Duration limit =
      (request.deadline_s() == 0 ? absl::Hours(1)
                                 : absl::Seconds(request.deadline_s())) +
      options_.rpc_timeout + absl::Seconds(5);
  SetRpcDeadline(context, limit);
  auto reader = stub_->Drain(&context, request);
  return ReadStream(context, *reader, on);
}

absl::Status Session::Watch(
    const devmem::v1::WatchRequest& request,
    const std::function<bool(const devmem::v1::WatchResponse&)>& on) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  grpc::ClientContext context;  // no deadline: until `on` says stop
  auto reader = stub_->Watch(&context, request);
  return ReadStream(context, *reader, on);
}

absl::StatusOr<devmem::v1::RestoreNicResponse> Session::RestoreNic(
    absl::string_view nic) {
  if (absl::Status ready = CheckRpcReady(); !ready.ok()) return ready;
  devmem::v1::RestoreNicRequest request;
  request.set_nic(std::string(nic));
  devmem::v1::RestoreNicResponse response;
  grpc::ClientContext context;
  SetRpcDeadline(context, options_.rpc_timeout, options_.auto_reconnect);
  grpc::Status status = stub_->RestoreNic(&context, request, &response);
  if (!status.ok()) return StatusFromGrpc(status);
  return response;
}

absl::StatusOr<std::string> Session::Deposit(int fd, absl::string_view label) {
  SessionFrame request;
  request.mutable_deposit()->set_label(std::string(label));
  const int fds[] = {fd};
  absl::StatusOr<Reply> reply =
      Exchange(request, fds, SessionFrame::kDeposited);
  if (!reply.ok()) return reply.status();
  if (reply->frame.has_error()) {
    return ErrorFrameStatus(reply->frame.error());
  }
  if (!reply->fds.empty()) {
    return absl::InternalError("devmemd's Deposited frame carried fds");
  }
  if (reply->frame.deposited().ticket().empty()) {
    return absl::InternalError("devmemd's Deposited frame has no ticket");
  }
  return reply->frame.deposited().ticket();
}

absl::Status Session::Ping() {
  uint64_t nonce;
  {
    absl::MutexLock lock(&mu_);
    nonce = next_nonce_++;
  }
  SessionFrame request;
  request.mutable_ping()->set_nonce(nonce);
  absl::StatusOr<Reply> reply = Exchange(request, {}, SessionFrame::kPong);
  if (!reply.ok()) return reply.status();
  if (reply->frame.has_error()) {
    return ErrorFrameStatus(reply->frame.error());
  }
  if (reply->frame.pong().nonce() != nonce) {
    absl::MutexLock lock(&mu_);
    broken_ = absl::InternalError(
        absl::StrCat("devmemd answered Ping{", nonce, "} with Pong{",
                     reply->frame.pong().nonce(), "}"));
    return broken_;
  }
  if (!reply->fds.empty()) {
    return absl::InternalError("devmemd's Pong carried fds");
  }
  return absl::OkStatus();
}

// --- Many fds per frame ---

namespace {

// Bytes a DepositedMany answer spends per fd beyond its label (the 32-digit
// ticket and the fields' tags and lengths), and on its header and the rest.
constexpr size_t kAnswerBytesPerFd = 48;
constexpr size_t kAnswerBytesFixed = 64;

// End of the DepositMany frame that starts at `begin`: at most `per_frame`
// fds, and labels short enough for the daemon's answer, which echoes them
// with a ticket each, to fit in `max_frame_bytes`.
size_t DepositFrameEnd(absl::Span<const std::string> labels, size_t begin,
                       size_t count, size_t per_frame, size_t max_frame_bytes) {
  const size_t end = std::min(count, begin + per_frame);
  if (labels.empty()) return end;
  size_t bytes = kAnswerBytesFixed;
  for (size_t i = begin; i < end; ++i) {
    bytes += labels[i].size() + kAnswerBytesPerFd;
    if (bytes > max_frame_bytes && i > begin) return i;
  }
  return end;
}

}  // namespace

size_t Session::FdsPerFrame() const {
  absl::MutexLock lock(&state_mu_);
  return std::min<size_t>(hello_.max_fds_per_frame(), kMaxFdsPerMessage);
}

absl::StatusOr<std::vector<absl::StatusOr<UniqueFd>>> Session::RedeemMany(
    absl::Span<const std::string> tickets) {
  std::vector<absl::StatusOr<UniqueFd>> out;
  out.reserve(tickets.size());
  const size_t per_frame = FdsPerFrame();
  if (per_frame <= 1) {
    // An older daemon: one Redeem each. Only a broken session fails the
    // whole call; an Error frame is that ticket's answer.
    for (const std::string& ticket : tickets) {
      absl::StatusOr<UniqueFd> fd = Redeem(ticket);
      if (!fd.ok()) {
        absl::MutexLock lock(&mu_);
        if (!broken_.ok()) return fd.status();
      }
      out.push_back(std::move(fd));
    }
    return out;
  }
  for (size_t begin = 0; begin < tickets.size(); begin += per_frame) {
    const absl::Span<const std::string> chunk =
        tickets.subspan(begin, per_frame);
    SessionFrame request;
    devmem::v1::RedeemMany* many = request.mutable_redeem_many();
    for (const std::string& ticket : chunk) many->add_tickets(ticket);
    absl::StatusOr<Reply> reply = Exchange(request, {}, SessionFrame::kFdBatch);
    if (!reply.ok()) return reply.status();
    if (reply->frame.has_error()) {
      return ErrorFrameStatus(reply->frame.error());
    }
    // Each answer is checked against its own request, so a wrong one is
    // refused without being taken for another's: the session stays usable.
    absl::StatusOr<std::vector<absl::StatusOr<UniqueFd>>> matched =
        MatchFdBatch(chunk, reply->frame.fd_batch(), std::move(reply->fds));
    if (!matched.ok()) return matched.status();
    for (absl::StatusOr<UniqueFd>& fd : *matched) out.push_back(std::move(fd));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> Session::DepositFrame(
    absl::Span<const UniqueFd> fds, absl::Span<const std::string> labels) {
  SessionFrame request;
  devmem::v1::DepositMany* many = request.mutable_deposit_many();
  for (const std::string& label : labels) many->add_labels(label);
  std::vector<int> borrowed;
  for (const UniqueFd& fd : fds) borrowed.push_back(fd.get_unowned());
  absl::StatusOr<Reply> reply =
      Exchange(request, borrowed, SessionFrame::kDepositedMany);
  if (!reply.ok()) return reply.status();
  if (reply->frame.has_error()) {
    return ErrorFrameStatus(reply->frame.error());
  }
  const auto& tickets = reply->frame.deposited_many().tickets();
  if (!reply->fds.empty() ||
      static_cast<size_t>(tickets.size()) != fds.size()) {
    return absl::InternalError(absl::StrCat(
        "devmemd answered a DepositMany of ", fds.size(), " fds with ",
        tickets.size(), " tickets and ", reply->fds.size(), " fds"));
  }
  return std::vector<std::string>(tickets.begin(), tickets.end());
}

absl::StatusOr<std::vector<std::string>> Session::DepositMany(
    std::vector<UniqueFd> fds, absl::Span<const std::string> labels) {
  if (!labels.empty() && labels.size() != fds.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DepositMany: ", labels.size(), " labels for ", fds.size(),
                     " fds; give none or one per fd"));
  }
  const size_t per_frame = std::max<size_t>(FdsPerFrame(), 1);
  const devmem::v1::Hello now = hello();
  const size_t frame_bytes =
      now.max_frame_bytes() == 0
          ? kMaxFrameBytes
          : std::min<size_t>(now.max_frame_bytes(), kMaxFrameBytes);
  const absl::Span<const UniqueFd> all(fds);
  std::vector<std::string> tickets;
  absl::Status failed;
  for (size_t begin = 0; begin < fds.size() && failed.ok();) {
    const size_t end =
        DepositFrameEnd(labels, begin, fds.size(), per_frame, frame_bytes);
    const absl::Span<const std::string> frame_labels =
        labels.empty() ? labels : labels.subspan(begin, end - begin);
    absl::StatusOr<std::vector<std::string>> got;
    if (per_frame == 1) {
      // An older daemon: one Deposit each.
      absl::StatusOr<std::string> one =
          Deposit(fds[begin].get_unowned(),
                  frame_labels.empty() ? "" : frame_labels[0]);
      got = one.ok() ? absl::StatusOr<std::vector<std::string>>({*one})
                     : one.status();
    } else {
      got = DepositFrame(all.subspan(begin, end - begin), frame_labels);
    }
    if (got.ok()) {
      tickets.insert(tickets.end(), got->begin(), got->end());
    } else {
      failed = got.status();
    }
    for (size_t i = begin; i < end; ++i) fds[i].Reset();  // the daemon's now
    begin = end;
  }
  if (failed.ok()) return tickets;
  // All or nothing: take back what earlier frames deposited; the fds close.
  if (!tickets.empty()) (void)RedeemMany(tickets);
  return failed;
}

void Session::KeepAnchor(const devmem::v1::BindResponse& response) {
  if (response.anchor_ticket().empty()) return;
  // Without the anchor the binding still works; it just would not survive a
  // daemon restart. So a failure here does not fail the bind.
  absl::StatusOr<UniqueFd> anchor = Redeem(response.anchor_ticket());
  if (!anchor.ok()) return;
  absl::MutexLock lock(&state_mu_);
  anchors_[response.binding().handle()] = *std::move(anchor);
}

}  // namespace devmem
