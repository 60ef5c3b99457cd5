#include "client/session_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/grpc_status.h"
#include "kernel/errno_status.h"
#include "kernel/scm_rights.h"
#include "proto/devmem/v1/frame.h"

namespace devmem {

using devmem::v1::SessionFrame;

namespace {

// Waits until `fd` is readable or `deadline` passes. poll() rather than
// SO_RCVTIMEO so the deadline covers EINTR restarts and the socket's own
// options stay untouched.
absl::Status WaitReadable(int fd, absl::Time deadline) {
  for (;;) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          "devmemd sent no answer on the session socket in time "
          "(daemon wedged or overloaded?)");
    }
    // Round up so a sub-millisecond remainder still waits instead of spinning.
    int64_t ms = absl::ToInt64Milliseconds(left + absl::Microseconds(999));
    struct pollfd pfd = {fd, POLLIN, 0};
    int n = ::poll(&pfd, 1,
                   static_cast<int>(
                       std::min<int64_t>(ms, std::numeric_limits<int>::max())));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll(session socket)");
    }
    if (n == 0) continue;  // re-check the deadline
    if (pfd.revents & POLLNVAL) {
      return absl::FailedPreconditionError("session socket is not open");
    }
    // POLLIN, POLLHUP or POLLERR: recvmsg tells which.
    return absl::OkStatus();
  }
}

// The failure a daemon's code and message stand for (INTERNAL if the code is
// 0: an Error frame or TicketError must carry a failure; 0 is a daemon bug).
absl::Status DaemonFailure(int code, absl::string_view text) {
  std::string message(text);
  if (message.empty()) message = "devmemd refused the request (no message)";
  absl::Status status = StatusFromCode(code, message);
  if (status.ok()) {
    return absl::InternalError(
        absl::StrCat("devmemd reported a failure with code 0 (OK): ", message));
  }
  return status;
}

}  // namespace

absl::StatusOr<SessionReply> ReadFrame(int fd, absl::Time deadline) {
  absl::Status ready = WaitReadable(fd, deadline);
  if (!ready.ok()) return ready;
  absl::StatusOr<ReceivedMessage> msg =
      RecvWithFds(fd, kMaxFrameBytes, /*max_fds=*/kMaxFdsPerMessage);
  if (!msg.ok()) {
    return absl::Status(
        msg.status().code(),
        absl::StrCat("reading a session frame: ", msg.status().message()));
  }
  if (msg->eof) {
    return absl::UnavailableError(
        "devmemd closed the session socket (daemon restarted or stopped, or "
        "it rejected a frame as a protocol violation)");
  }
  absl::StatusOr<SessionFrame> frame = DecodeFrame(msg->data);
  if (!frame.ok()) {
    return absl::InternalError(absl::StrCat("malformed frame from devmemd: ",
                                            frame.status().message()));
  }
  return SessionReply{*std::move(frame), std::move(msg->fds)};
}

const char* BodyName(const SessionFrame& frame) {
  switch (frame.body_case()) {
    case SessionFrame::kHello:
      return "Hello";
    case SessionFrame::kRedeem:
      return "Redeem";
    case SessionFrame::kFdGrant:
      return "FdGrant";
    case SessionFrame::kDeposit:
      return "Deposit";
    case SessionFrame::kDeposited:
      return "Deposited";
    case SessionFrame::kError:
      return "Error";
    case SessionFrame::kPing:
      return "Ping";
    case SessionFrame::kPong:
      return "Pong";
    case SessionFrame::kResume:
      return "Resume";
    case SessionFrame::kResumed:
      return "Resumed";
    case SessionFrame::kReturnAnchor:
      return "ReturnAnchor";
    case SessionFrame::kAnchorAccepted:
      return "AnchorAccepted";
    case SessionFrame::kRedeemMany:
      return "RedeemMany";
    case SessionFrame::kFdBatch:
      return "FdBatch";
    case SessionFrame::kDepositMany:
      return "DepositMany";
    case SessionFrame::kDepositedMany:
      return "DepositedMany";
    case SessionFrame::BODY_NOT_SET:
      break;
  }
  return "(empty)";
}

absl::Status ErrorFrameStatus(const devmem::v1::Error& error) {
  return DaemonFailure(error.code(), error.message());
}

absl::StatusOr<std::vector<absl::StatusOr<UniqueFd>>> MatchFdBatch(
    absl::Span<const std::string> tickets, const devmem::v1::FdBatch& batch,
    std::vector<UniqueFd> fds) {
  if (fds.size() != static_cast<size_t>(batch.tickets_size())) {
    return absl::InternalError(
        absl::StrCat("devmemd's FdBatch granted ", batch.tickets_size(),
                     " tickets but carried ", fds.size(), " fds (all closed)"));
  }
  std::vector<absl::StatusOr<UniqueFd>> out;
  out.reserve(tickets.size());
  std::vector<bool> failed(tickets.size(), false);
  for (size_t i = 0; i < tickets.size(); ++i) {
    out.emplace_back(absl::InternalError("not answered"));
  }
  for (const devmem::v1::TicketError& error : batch.errors()) {
    if (error.index() >= tickets.size() || failed[error.index()]) {
      return absl::InternalError(absl::StrCat(
          "devmemd's FdBatch has a second or out-of-range error for ticket "
          "index ",
          error.index(), " of a RedeemMany of ", tickets.size()));
    }
    failed[error.index()] = true;
    out[error.index()] = DaemonFailure(error.code(), error.message());
  }
  // Grants keep the request's order, skipping the tickets that failed.
  size_t next = 0;
  for (size_t i = 0; i < tickets.size(); ++i) {
    if (failed[i]) continue;
    if (next == fds.size() ||
        batch.tickets(static_cast<int>(next)) != tickets[i]) {
      return absl::InternalError(absl::StrCat(
          "devmemd's FdBatch does not answer ticket ", i, " ('", tickets[i],
          "') of a RedeemMany of ", tickets.size(), " (all fds closed)"));
    }
    out[i] = std::move(fds[next++]);
  }
  if (next != fds.size()) {
    return absl::InternalError(
        absl::StrCat("devmemd's FdBatch granted ", fds.size() - next,
                     " tickets that were not asked for (all fds closed)"));
  }
  return out;
}

absl::StatusOr<UniqueFd> ConnectSessionSocket(const std::string& runtime_dir) {
  const std::string session_path = absl::StrCat(runtime_dir, "/session.sock");

  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (session_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path ", session_path, " is longer than the ",
        sizeof(addr.sun_path) - 1, " bytes a Unix socket address can hold"));
  }
  std::memcpy(addr.sun_path, session_path.data(), session_path.size());

  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket(AF_UNIX, SOCK_SEQPACKET)");
  int rc;
  do {
    rc = ::connect(fd.get_unowned(), reinterpret_cast<struct sockaddr*>(&addr),
                   sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    const int err = errno;
    switch (err) {
      case ENOENT:
      case ENOTDIR:
        return ErrnoStatus(
            err,
            absl::StrCat("is devmemd running? no socket at ", session_path));
      case ECONNREFUSED:
        return ErrnoStatus(
            err, absl::StrCat("is devmemd running? nobody accepts on ",
                              session_path, " (stale socket file?)"));
      case EACCES:
      case EPERM:
        return ErrnoStatus(
            err, absl::StrCat("no permission to connect to ", session_path,
                              " (is this user in the daemon's socket_group?)"));
      case EPROTOTYPE:
        return ErrnoStatus(
            err, absl::StrCat(session_path,
                              " is not a SOCK_SEQPACKET socket (wrong "
                              "--runtime_dir, or not devmemd?)"));
      default:
        return ErrnoStatus(err, absl::StrCat("connect(", session_path, ")"));
    }
  }
  return fd;
}

absl::StatusOr<devmem::v1::Hello> ReadHello(int fd, absl::Duration timeout) {
  absl::StatusOr<SessionReply> first = ReadFrame(fd, absl::Now() + timeout);
  if (!first.ok()) {
    return absl::Status(first.status().code(),
                        absl::StrCat("waiting for Hello from devmemd: ",
                                     first.status().message()));
  }
  if (!first->frame.has_hello()) {
    return absl::InternalError(absl::StrCat("devmemd's first frame is ",
                                            BodyName(first->frame),
                                            ", expected Hello"));
  }
  if (!first->fds.empty()) {
    return absl::InternalError("devmemd's Hello carried fds");
  }
  const devmem::v1::Hello& hello = first->frame.hello();
  if (hello.code() != 0) {
    // The daemon refused us (e.g. 7 PERMISSION_DENIED for a uid that is not
    // allowed); its message names the uid/gid it saw.
    std::string message = hello.message();
    if (message.empty()) message = "devmemd refused the session";
    absl::Status refused = StatusFromCode(hello.code(), message);
    return refused;
  }
  if (hello.protocol_version() != kProtocolVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "devmemd speaks session protocol version ", hello.protocol_version(),
        "; this client speaks ", kProtocolVersion));
  }
  if (hello.session_token().empty()) {
    return absl::InternalError("devmemd's Hello has no session_token");
  }
  return hello;
}

}  // namespace devmem
