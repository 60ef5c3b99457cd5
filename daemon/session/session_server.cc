#include "daemon/session/session_server.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernel/close_fds.h"
#include "kernel/errno_status.h"
#include "kernel/scm_rights.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {
namespace {

// epoll user data for the two non-session fds; session ids start at 1 and never
// reach these.
constexpr uint64_t kListenTag = ~uint64_t{0};
constexpr uint64_t kStopTag = ~uint64_t{0} - 1;
// The kernel's most per message (kernel/scm_rights.h), for fds and for the
// tickets of one RedeemMany.
constexpr uint32_t kMaxFdsPerFrame = kMaxFdsPerMessage;
// Deposit labels come back in Deposited; errors are cut to fit a frame.
constexpr size_t kMaxLabelBytes = 256;
constexpr size_t kMaxErrorMessage = 4096;
// An FdBatch holds up to kMaxFdsPerFrame TicketErrors: each message is cut
// so that all of them, each with its ticket (34 bytes) and field overhead
// (at most 14 bytes), fit in one frame.
constexpr size_t kMaxItemMessage = 200;
static_assert(kMaxFdsPerFrame * (kMaxItemMessage + 48) + 64 <= kMaxFrameBytes,
              "an FdBatch of errors must fit in a frame");

int RpcCode(const absl::Status& s) { return static_cast<int>(s.code()); }

// `text` cut to at most `max` bytes, on a UTF-8 character boundary (proto3
// strings must stay valid UTF-8 or the peer cannot parse the frame).
std::string Cut(absl::string_view text, size_t max) {
  if (text.size() <= max) return std::string{text};
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return std::string{text.substr(0, end)};
}

devmem::v1::SessionFrame ErrorFrame(absl::StatusCode code,
                                    absl::string_view message) {
  devmem::v1::SessionFrame frame;
  frame.mutable_error()->set_code(static_cast<int>(code));
  frame.mutable_error()->set_message(std::string{message});
  return frame;
}

devmem::v1::SessionFrame ErrorFrame(const absl::Status& status) {
  return ErrorFrame(status.code(), status.message());
}

}  // namespace

SessionServer::SessionServer(UniqueFd listen_fd, const AccessPolicy* policy,
                             SessionManager* sessions)
    : listen_fd_(std::move(listen_fd)), policy_(policy), sessions_(sessions) {}

SessionServer::~SessionServer() { Stop(); }

absl::Status SessionServer::Start() {
  epoll_fd_.Reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return ErrnoStatus(errno, "epoll_create1");
  stop_fd_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return ErrnoStatus(errno, "eventfd");
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  if (::epoll_ctl(epoll_fd_.get_unowned(), EPOLL_CTL_ADD,
                  listen_fd_.get_unowned(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl(session listener)");
  }
  ev.data.u64 = kStopTag;
  if (::epoll_ctl(epoll_fd_.get_unowned(), EPOLL_CTL_ADD,
                  stop_fd_.get_unowned(), &ev) != 0) {
    return ErrnoStatus(errno, "epoll_ctl(stop)");
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void SessionServer::Stop(bool release_leases) {
  if (!thread_.joinable()) return;
  if (!release_leases) sessions_->SetCloseObserver(nullptr);
  uint64_t one = 1;
  (void)!::write(stop_fd_.get_unowned(), &one, sizeof(one));
  thread_.join();
  std::vector<uint64_t> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, fd] : conns_) ids.push_back(id);
  }
  for (uint64_t id : ids) CloseSession(id);
}

size_t SessionServer::connection_count() const {
  absl::MutexLock lock(&mu_);
  return conns_.size();
}

void SessionServer::Loop() {
  // Expire tickets often enough that an expired fd is closed within ~1/4 TTL.
  const int tick_ms = static_cast<int>(std::clamp<int64_t>(
      absl::ToInt64Milliseconds(sessions_->ticket_ttl()) / 4, 25, 1000));
  struct epoll_event events[64];
  for (;;) {
    int n = ::epoll_wait(epoll_fd_.get_unowned(), events, 64, tick_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    sessions_->ExpireTickets();
    sessions_->ExpireDetached();
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kStopTag) return;
      if (tag == kListenTag) {
        Accept();
        continue;
      }
      int fd = -1;
      {
        absl::MutexLock lock(&mu_);
        auto it = conns_.find(tag);
        if (it == conns_.end()) continue;  // closed earlier in this batch
        fd = it->second.get_unowned();
      }
      // Data first: a client may send its last frame and close right away.
      bool keep = true;
      if (events[i].events & EPOLLIN) keep = Serve(tag, fd);
      if (keep && (events[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) &&
          !(events[i].events & EPOLLIN)) {
        keep = false;
      }
      if (!keep) CloseSession(tag);
    }
  }
}

void SessionServer::Accept() {
  for (;;) {
    UniqueFd conn = reserve_.Accept(
        listen_fd_.get_unowned(), SOCK_CLOEXEC | SOCK_NONBLOCK, [](int fd) {
          // Out of fds: say so instead of leaving the client waiting.
          devmem::v1::SessionFrame refusal;
          refusal.mutable_hello()->set_protocol_version(kProtocolVersion);
          refusal.mutable_hello()->set_code(
              static_cast<int>(absl::StatusCode::kResourceExhausted));
          refusal.mutable_hello()->set_message(
              "devmemd is out of file descriptors (RLIMIT_NOFILE); close "
              "idle sessions, or raise devmemd's LimitNOFILE");
          auto bytes = EncodeFrame(refusal);
          if (bytes.ok()) (void)SendWithFds(fd, *bytes, {});
        });
    if (!conn) {
      if (errno == EMFILE || errno == ENFILE) continue;  // shed one, go on
      return;  // EAGAIN (drained), or another error: retry on the next event
    }
    auto cred = GetPeerCred(conn.get_unowned(), policy_);
    if (!cred.ok()) continue;
    devmem::v1::SessionFrame frame;
    devmem::v1::Hello* hello = frame.mutable_hello();
    hello->set_protocol_version(kProtocolVersion);
    hello->set_peer_uid(cred->uid);
    hello->set_peer_gid(cred->gid);
    hello->set_peer_pid(cred->pid);
    absl::Status allowed = policy_->Check(*cred);
    absl::StatusOr<SessionManager::Opened> opened =
        allowed.ok() ? sessions_->Open(*cred)
                     : absl::StatusOr<SessionManager::Opened>(allowed);
    if (!opened.ok()) {
      hello->set_code(RpcCode(opened.status()));
      hello->set_message(absl::StrCat(opened.status().message()));
      auto bytes = EncodeFrame(frame);
      if (bytes.ok()) (void)SendWithFds(conn.get_unowned(), *bytes, {});
      continue;  // conn closes here
    }
    hello->set_session_id(opened->id);
    hello->set_session_token(opened->token);
    hello->set_ticket_ttl_ms(static_cast<uint32_t>(
        absl::ToInt64Milliseconds(sessions_->ticket_ttl())));
    hello->set_max_fds_per_frame(kMaxFdsPerFrame);
    hello->set_max_frame_bytes(kMaxFrameBytes);
    hello->set_max_tickets_per_session(
        sessions_->options().max_tickets_per_session);
    auto bytes = EncodeFrame(frame);
    if (!bytes.ok() || !SendWithFds(conn.get_unowned(), *bytes, {}).ok()) {
      sessions_->Close(opened->id);
      continue;
    }
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = opened->id;
    if (::epoll_ctl(epoll_fd_.get_unowned(), EPOLL_CTL_ADD, conn.get_unowned(),
                    &ev) != 0) {
      sessions_->Close(opened->id);
      continue;
    }
    absl::MutexLock lock(&mu_);
    conns_.emplace(opened->id, std::move(conn));
  }
}

bool SessionServer::Reply(uint64_t session_id, int fd,
                          const devmem::v1::SessionFrame& frame,
                          absl::Span<const int> pass_fds) {
  if (frame.has_error()) {
    reply_code_ = static_cast<absl::StatusCode>(frame.error().code());
  }
  auto bytes = EncodeFrame(frame);
  if (!bytes.ok() && frame.has_error()) {
    // One answer per frame, always: an error too long for a frame is cut.
    devmem::v1::SessionFrame cut = frame;
    cut.mutable_error()->clear_ticket();
    cut.mutable_error()->set_message(
        Cut(frame.error().message(), kMaxErrorMessage));
    bytes = EncodeFrame(cut);
  }
  if (!bytes.ok()) return false;
  // Non-blocking socket: EAGAIN means the client stopped reading its replies.
  // All fds go in one message: at most kMaxFdsPerFrame, the kernel's limit.
  return SendWithFds(fd, *bytes, pass_fds).ok();
}

bool SessionServer::Serve(uint64_t session_id, int fd) {
  auto msg = RecvWithFds(fd, kMaxFrameBytes, kMaxFdsPerFrame);
  if (!msg.ok()) {
    if (msg.status().code() == absl::StatusCode::kUnavailable) return true;
    ++violations_;  // MSG_TRUNC/CTRUNC, too many fds, foreign cmsg: fds closed
    return false;
  }
  if (msg->eof) return false;
  auto frame = DecodeFrame(msg->data);
  if (!frame.ok()) {
    ++violations_;
    return false;  // msg->fds close with it
  }
  using F = devmem::v1::SessionFrame;
  if (frame->body_case() != F::kDeposit &&
      frame->body_case() != F::kDepositMany &&
      frame->body_case() != F::kReturnAnchor && !msg->fds.empty()) {
    ++violations_;
    return false;
  }
  const char* method = FrameMethod(frame->body_case());
  if (method == nullptr) {
    // A daemon->client body sent by the client.
    ++violations_;
    return false;
  }
  const absl::Time start = absl::Now();
  reply_code_ = absl::StatusCode::kOk;
  const bool keep = ServeFrame(session_id, fd, *frame, msg->fds);
  if (observer_.frame) {
    observer_.frame(method, reply_code_, absl::Now() - start);
  }
  return keep;
}

const char* SessionServer::FdKind(int fd) {
  // A steered TCP socket, or a binding's anchor: its netlink socket, or the
  // simulated backend's anchor file. Anything else (a client redeeming its
  // own deposit) is "other".
  int domain = 0;
  socklen_t len = sizeof(domain);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0) {
    if (domain == AF_INET || domain == AF_INET6) return kFdKindSocket;
    if (domain == AF_NETLINK) return kFdKindAnchor;
    return kFdKindOther;
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) return kFdKindAnchor;
  return kFdKindOther;
}

const char* SessionServer::FrameMethod(
    devmem::v1::SessionFrame::BodyCase body) {
  using F = devmem::v1::SessionFrame;
  switch (body) {
    case F::kRedeem:
      return "session.Redeem";
    case F::kDeposit:
      return "session.Deposit";
    case F::kPing:
      return "session.Ping";
    case F::kResume:
      return "session.Resume";
    case F::kReturnAnchor:
      return "session.ReturnAnchor";
    case F::kRedeemMany:
      return "session.RedeemMany";
    case F::kDepositMany:
      return "session.DepositMany";
    default:
      return nullptr;
  }
}

bool SessionServer::ServeFrame(uint64_t session_id, int fd,
                               const devmem::v1::SessionFrame& frame,
                               std::vector<UniqueFd>& fds) {
  using F = devmem::v1::SessionFrame;
  switch (frame.body_case()) {
    case F::kRedeem:
      return HandleRedeem(session_id, fd, frame.redeem().ticket());
    case F::kRedeemMany:
      return HandleRedeemMany(session_id, fd, frame.redeem_many());
    case F::kDeposit:
      return HandleDeposit(session_id, fd, frame.deposit().label(), fds);
    case F::kDepositMany:
      return HandleDepositMany(session_id, fd, frame.deposit_many(), fds);
    case F::kPing: {
      devmem::v1::SessionFrame reply;
      reply.mutable_pong()->set_nonce(frame.ping().nonce());
      return Reply(session_id, fd, reply);
    }
    case F::kResume:
      return HandleResume(session_id, fd, frame.resume().session_token());
    case F::kReturnAnchor: {
      NoteReceived(fds.size(), "anchor");
      if (fds.size() != 1) {
        fds.clear();
        return Reply(
            session_id, fd,
            ErrorFrame(
                absl::StatusCode::kInvalidArgument,
                "ReturnAnchor frame must carry exactly one fd (SCM_RIGHTS)"));
      }
      return HandleReturnAnchor(session_id, fd, frame.return_anchor().handle(),
                                std::move(fds[0]));
    }
    default:
      // A daemon->client body sent by the client.
      ++violations_;
      return false;
  }
}

void SessionServer::NoteReceived(size_t count, absl::string_view kind) {
  if (!observer_.fd || count == 0) return;
  observer_.fd("from_client", kind, count);
}

void SessionServer::NoteHandedOff(absl::Span<const UniqueFd> fds,
                                  absl::Span<const char* const> kinds) {
  fds_handed_off_ += fds.size();
  if (!observer_.fd) return;
  // One report per kind (a RedeemMany frame holds up to 253 fds).
  std::vector<std::pair<absl::string_view, size_t>> counts;
  for (size_t i = 0; i < fds.size(); ++i) {
    const absl::string_view kind = i < kinds.size() && kinds[i] != nullptr
                                       ? kinds[i]
                                       : FdKind(fds[i].get_unowned());
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& k) { return k.first == kind; });
    if (it == counts.end()) {
      counts.emplace_back(kind, 1);
    } else {
      ++it->second;
    }
  }
  for (const auto& [kind, count] : counts) {
    observer_.fd("to_client", kind, count);
  }
}

bool SessionServer::HandleRedeem(uint64_t session_id, int fd,
                                 const std::string& ticket) {
  const char* kind = nullptr;
  absl::StatusOr<UniqueFd> taken = sessions_->Redeem(session_id, ticket, &kind);
  if (!taken.ok()) {
    devmem::v1::SessionFrame reply = ErrorFrame(taken.status());
    // Echo only what could be a ticket: the answer must fit in a frame.
    if (IsTicketFormat(ticket)) reply.mutable_error()->set_ticket(ticket);
    return Reply(session_id, fd, reply);
  }
  devmem::v1::SessionFrame reply;
  reply.mutable_fd_grant()->set_ticket(ticket);
  // Our copy of the fd closes when `taken` goes out of scope, after the
  // kernel has duplicated it into the message.
  const int pass[] = {taken->get_unowned()};
  if (!Reply(session_id, fd, reply, pass)) return false;
  NoteHandedOff(absl::MakeConstSpan(&*taken, 1), {kind});
  return true;
}

bool SessionServer::HandleRedeemMany(uint64_t session_id, int fd,
                                     const devmem::v1::RedeemMany& request) {
  const int count = request.tickets_size();
  if (count == 0 || static_cast<uint32_t>(count) > kMaxFdsPerFrame) {
    return Reply(session_id, fd,
                 ErrorFrame(absl::StatusCode::kInvalidArgument,
                            absl::StrCat("RedeemMany names ", count,
                                         " tickets; 1 to ", kMaxFdsPerFrame,
                                         " per frame (none was redeemed)")));
  }
  devmem::v1::SessionFrame reply;
  devmem::v1::FdBatch* batch = reply.mutable_fd_batch();
  std::vector<UniqueFd> granted;
  std::vector<const char*> kinds;
  std::vector<int> pass;
  for (int i = 0; i < count; ++i) {
    // Each ticket on its own, as a Redeem of it would go; a ticket named
    // twice is spent by its first mention (NOT_FOUND for the second).
    const std::string& ticket = request.tickets(i);
    const char* kind = nullptr;
    absl::StatusOr<UniqueFd> taken =
        sessions_->Redeem(session_id, ticket, &kind);
    if (!taken.ok()) {
      devmem::v1::TicketError* err = batch->add_errors();
      err->set_index(static_cast<uint32_t>(i));
      err->set_code(RpcCode(taken.status()));
      err->set_message(Cut(taken.status().message(), kMaxItemMessage));
      if (IsTicketFormat(ticket)) err->set_ticket(ticket);
      continue;
    }
    batch->add_tickets(ticket);
    pass.push_back(taken->get_unowned());
    granted.push_back(*std::move(taken));
    kinds.push_back(kind);
  }
  // As for Redeem, our copies close once the kernel has its own in the
  // message (a few close_range calls for up to 253 fds); if the send fails
  // the session closes, and they would have been closed with it.
  const bool sent = Reply(session_id, fd, reply, pass);
  if (sent) NoteHandedOff(granted, kinds);
  CloseFds(&granted);
  return sent;
}

bool SessionServer::HandleDeposit(uint64_t session_id, int fd,
                                  const std::string& label,
                                  std::vector<UniqueFd>& fds) {
  NoteReceived(fds.size(), "dmabuf");
  if (fds.size() != 1) {
    fds.clear();  // closed before the answer says so
    return Reply(session_id, fd,
                 ErrorFrame(absl::StatusCode::kInvalidArgument,
                            "Deposit frame must carry exactly one fd "
                            "(SCM_RIGHTS)"));
  }
  if (label.size() > kMaxLabelBytes) {
    fds.clear();
    return Reply(session_id, fd,
                 ErrorFrame(absl::StatusCode::kInvalidArgument,
                            absl::StrCat("Deposit label is ", label.size(),
                                         " bytes; at most ", kMaxLabelBytes,
                                         " (it is echoed in Deposited); the "
                                         "fd was closed")));
  }
  absl::StatusOr<std::string> ticket =
      sessions_->IssueTicket(session_id, std::move(fds[0]));
  if (!ticket.ok()) return Reply(session_id, fd, ErrorFrame(ticket.status()));
  devmem::v1::SessionFrame reply;
  auto* dep = reply.mutable_deposited();
  dep->set_ticket(*ticket);
  dep->set_label(label);
  dep->set_ticket_ttl_ms(static_cast<uint32_t>(
      absl::ToInt64Milliseconds(sessions_->ticket_ttl())));
  return Reply(session_id, fd, reply);
}

absl::Status SessionServer::CheckDepositMany(
    const devmem::v1::DepositMany& request, size_t fd_count) {
  if (fd_count == 0) {
    return absl::InvalidArgumentError(
        "DepositMany frame must carry 1 or more fds (SCM_RIGHTS)");
  }
  const size_t labels = static_cast<size_t>(request.labels_size());
  if (labels != 0 && labels != fd_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("DepositMany has ", labels, " labels for ", fd_count,
                     " fds; give none or one per fd; the fds were closed"));
  }
  for (size_t i = 0; i < labels; ++i) {
    if (request.labels(static_cast<int>(i)).size() > kMaxLabelBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DepositMany label ", i, " is ",
          request.labels(static_cast<int>(i)).size(), " bytes; at most ",
          kMaxLabelBytes, "; the fds were closed"));
    }
  }
  return absl::OkStatus();
}

bool SessionServer::HandleDepositMany(uint64_t session_id, int fd,
                                      const devmem::v1::DepositMany& request,
                                      std::vector<UniqueFd>& fds) {
  NoteReceived(fds.size(), "dmabuf");
  devmem::v1::SessionFrame reply;
  devmem::v1::DepositedMany* dep = reply.mutable_deposited_many();
  *dep->mutable_labels() = request.labels();
  dep->set_ticket_ttl_ms(static_cast<uint32_t>(
      absl::ToInt64Milliseconds(sessions_->ticket_ttl())));
  // Tickets are all 32 characters: placeholders give the answer its size.
  for (size_t i = 0; i < fds.size(); ++i) {
    dep->add_tickets(std::string(32, '0'));
  }
  absl::Status valid = CheckDepositMany(request, fds.size());
  if (valid.ok() && !EncodeFrame(reply).ok()) {
    valid = absl::InvalidArgumentError(
        absl::StrCat("DepositMany labels are too long for the answer, which "
                     "echoes them with a ticket per fd within ",
                     kMaxFrameBytes, " bytes; the fds were closed"));
  }
  if (!valid.ok()) {
    fds.clear();  // closed before the answer says so
    return Reply(session_id, fd, ErrorFrame(valid));
  }
  const size_t count = fds.size();
  for (size_t i = 0; i < count; ++i) {
    absl::StatusOr<std::string> ticket =
        sessions_->IssueTicket(session_id, std::move(fds[i]));
    if (!ticket.ok()) {
      // All or nothing: take back this frame's tickets; their fds close.
      for (size_t j = 0; j < i; ++j) {
        (void)sessions_->Redeem(session_id, dep->tickets(static_cast<int>(j)));
      }
      fds.clear();
      return Reply(
          session_id, fd,
          ErrorFrame(ticket.status().code(),
                     absl::StrCat(ticket.status().message(), "; none of the ",
                                  count, " fds was kept")));
    }
    *dep->mutable_tickets(static_cast<int>(i)) = *std::move(ticket);
  }
  fds.clear();
  return Reply(session_id, fd, reply);
}

bool SessionServer::HandleResume(uint64_t fresh_id, int fd,
                                 const std::string& token) {
  devmem::v1::SessionFrame reply;
  auto peer = GetPeerCred(fd, policy_);
  absl::StatusOr<uint64_t> resumed =
      peer.ok() ? sessions_->Resume(fresh_id, token, *peer)
                : absl::StatusOr<uint64_t>(peer.status());
  if (!resumed.ok()) return Reply(fresh_id, fd, ErrorFrame(resumed.status()));
  // The connection now belongs to the resumed session.
  {
    absl::MutexLock lock(&mu_);
    auto it = conns_.find(fresh_id);
    if (it == conns_.end()) return false;
    UniqueFd conn = std::move(it->second);
    conns_.erase(it);
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = *resumed;
    if (::epoll_ctl(epoll_fd_.get_unowned(), EPOLL_CTL_MOD, conn.get_unowned(),
                    &ev) != 0) {
      return false;
    }
    conns_.emplace(*resumed, std::move(conn));
  }
  auto* r = reply.mutable_resumed();
  r->set_session_id(*resumed);
  if (hooks_.awaiting_anchor) {
    for (uint64_t h : hooks_.awaiting_anchor(*resumed)) {
      r->add_awaiting_anchor(h);
    }
  }
  if (hooks_.anchored) {
    for (uint64_t h : hooks_.anchored(*resumed)) r->add_adopted(h);
  }
  // If the answer cannot be sent the connection closes, and with it the
  // session: its leases are released like those of any closed session.
  if (!Reply(*resumed, fd, reply)) CloseSession(*resumed);
  return true;
}

bool SessionServer::HandleReturnAnchor(uint64_t session_id, int fd,
                                       uint64_t handle, UniqueFd anchor) {
  devmem::v1::SessionFrame reply;
  absl::StatusOr<uint32_t> kernel_id =
      hooks_.return_anchor
          ? hooks_.return_anchor(session_id, handle, std::move(anchor))
          : absl::StatusOr<uint32_t>(absl::FailedPreconditionError(
                "this devmemd keeps no bindings"));
  if (!kernel_id.ok()) {
    return Reply(session_id, fd, ErrorFrame(kernel_id.status()));
  }
  reply.mutable_anchor_accepted()->set_handle(handle);
  reply.mutable_anchor_accepted()->set_kernel_id(*kernel_id);
  return Reply(session_id, fd, reply);
}

void SessionServer::CloseSession(uint64_t session_id) {
  UniqueFd conn;
  {
    absl::MutexLock lock(&mu_);
    auto it = conns_.find(session_id);
    if (it == conns_.end()) return;
    conn = std::move(it->second);
    conns_.erase(it);
  }
  ::epoll_ctl(epoll_fd_.get_unowned(), EPOLL_CTL_DEL, conn.get_unowned(),
              nullptr);
  sessions_->Close(session_id);
}

}  // namespace devmem
