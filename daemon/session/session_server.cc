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
#include "kernel/errno_status.h"
#include "kernel/scm_rights.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {
namespace {

// epoll user data for the two non-session fds; session ids start at 1 and never
// reach these.
constexpr uint64_t kListenTag = ~uint64_t{0};
constexpr uint64_t kStopTag = ~uint64_t{0} - 1;
constexpr uint32_t kMaxFdsPerFrame = 1;
// Deposit labels come back in Deposited; errors are cut to fit a frame.
constexpr size_t kMaxLabelBytes = 256;
constexpr size_t kMaxErrorMessage = 4096;

int RpcCode(const absl::Status& s) { return static_cast<int>(s.code()); }

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
    auto cred = GetPeerCred(conn.get_unowned());
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
                          const devmem::v1::SessionFrame& frame, int pass_fd) {
  if (frame.has_error()) {
    reply_code_ = static_cast<absl::StatusCode>(frame.error().code());
  }
  auto bytes = EncodeFrame(frame);
  if (!bytes.ok() && frame.has_error()) {
    // One answer per frame, always: an error too long for a frame is cut.
    devmem::v1::SessionFrame cut = frame;
    cut.mutable_error()->clear_ticket();
    cut.mutable_error()->mutable_message()->resize(
        std::min<size_t>(frame.error().message().size(), kMaxErrorMessage));
    bytes = EncodeFrame(cut);
  }
  if (!bytes.ok()) return false;
  std::vector<int> fds;
  if (pass_fd >= 0) fds.push_back(pass_fd);
  // Non-blocking socket: EAGAIN means the client stopped reading its replies.
  return SendWithFds(fd, *bytes, fds).ok();
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
    if (domain == AF_INET || domain == AF_INET6) return "socket";
    if (domain == AF_NETLINK) return "anchor";
    return "other";
  }
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) return "anchor";
  return "other";
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
    default:
      return nullptr;
  }
}

bool SessionServer::ServeFrame(uint64_t session_id, int fd,
                               const devmem::v1::SessionFrame& frame_in,
                               std::vector<UniqueFd>& fds) {
  const devmem::v1::SessionFrame* frame = &frame_in;
  devmem::v1::SessionFrame reply;
  using F = devmem::v1::SessionFrame;
  switch (frame->body_case()) {
    case F::kRedeem: {
      const std::string& ticket = frame->redeem().ticket();
      auto taken = sessions_->Redeem(session_id, ticket);
      if (!taken.ok()) {
        auto* err = reply.mutable_error();
        err->set_code(RpcCode(taken.status()));
        err->set_message(absl::StrCat(taken.status().message()));
        // Echo only what could be a ticket: the answer must fit in a frame.
        if (IsTicketFormat(ticket)) err->set_ticket(ticket);
        return Reply(session_id, fd, reply);
      }
      reply.mutable_fd_grant()->set_ticket(ticket);
      // Our copy of the fd closes when `taken` goes out of scope, after the
      // kernel has duplicated it into the message.
      if (!Reply(session_id, fd, reply, taken->get_unowned())) return false;
      ++fds_handed_off_;
      if (observer_.fd) observer_.fd("to_client", FdKind(taken->get_unowned()));
      return true;
    }
    case F::kDeposit: {
      if (observer_.fd && !fds.empty()) observer_.fd("from_client", "dmabuf");
      if (fds.size() != 1) {
        auto* err = reply.mutable_error();
        err->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
        err->set_message(
            "Deposit frame must carry exactly one fd (SCM_RIGHTS)");
        return Reply(session_id, fd, reply);
      }
      if (frame->deposit().label().size() > kMaxLabelBytes) {
        auto* err = reply.mutable_error();
        err->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
        err->set_message(
            absl::StrCat("Deposit label is ", frame->deposit().label().size(),
                         " bytes; at most ", kMaxLabelBytes,
                         " (it is echoed in Deposited); the fd was closed"));
        return Reply(session_id, fd, reply);
      }
      auto ticket = sessions_->IssueTicket(session_id, std::move(fds[0]));
      if (!ticket.ok()) {
        auto* err = reply.mutable_error();
        err->set_code(RpcCode(ticket.status()));
        err->set_message(absl::StrCat(ticket.status().message()));
        return Reply(session_id, fd, reply);
      }
      auto* dep = reply.mutable_deposited();
      dep->set_ticket(*ticket);
      dep->set_label(frame->deposit().label());
      dep->set_ticket_ttl_ms(static_cast<uint32_t>(
          absl::ToInt64Milliseconds(sessions_->ticket_ttl())));
      return Reply(session_id, fd, reply);
    }
    case F::kPing:
      reply.mutable_pong()->set_nonce(frame->ping().nonce());
      return Reply(session_id, fd, reply);
    case F::kResume:
      return HandleResume(session_id, fd, frame->resume().session_token());
    case F::kReturnAnchor: {
      if (observer_.fd && !fds.empty()) observer_.fd("from_client", "anchor");
      if (fds.size() != 1) {
        auto* err = reply.mutable_error();
        err->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
        err->set_message(
            "ReturnAnchor frame must carry exactly one fd (SCM_RIGHTS)");
        return Reply(session_id, fd, reply);
      }
      return HandleReturnAnchor(session_id, fd, frame->return_anchor().handle(),
                                std::move(fds[0]));
    }
    default:
      // A daemon->client body sent by the client.
      ++violations_;
      return false;
  }
}

bool SessionServer::HandleResume(uint64_t fresh_id, int fd,
                                 const std::string& token) {
  devmem::v1::SessionFrame reply;
  auto peer = GetPeerCred(fd);
  absl::StatusOr<uint64_t> resumed =
      peer.ok() ? sessions_->Resume(fresh_id, token, *peer)
                : absl::StatusOr<uint64_t>(peer.status());
  if (!resumed.ok()) {
    auto* err = reply.mutable_error();
    err->set_code(RpcCode(resumed.status()));
    err->set_message(absl::StrCat(resumed.status().message()));
    return Reply(fresh_id, fd, reply);
  }
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
    auto* err = reply.mutable_error();
    err->set_code(RpcCode(kernel_id.status()));
    err->set_message(absl::StrCat(kernel_id.status().message()));
    return Reply(session_id, fd, reply);
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
