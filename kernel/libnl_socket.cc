#include "kernel/libnl_socket.h"

#include <netlink/errno.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <optional>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"
#include "kernel/netlink_error.h"
#include "kernel/unique_fd.h"

namespace devmem {
namespace {

// A kernel that never answers must not hang a gRPC thread forever.
constexpr int kReceiveTimeoutSeconds = 5;

int ErrnoForNle(int nle) {
  switch (nle) {
    case NLE_INTR:
      return EINTR;
    case NLE_BAD_SOCK:
      return EBADF;
    case NLE_AGAIN:
      return EAGAIN;
    case NLE_NOMEM:
      return ENOMEM;
    case NLE_EXIST:
      return EEXIST;
    case NLE_INVAL:
      return EINVAL;
    case NLE_RANGE:
      return ERANGE;
    case NLE_MSGSIZE:
      return EMSGSIZE;
    case NLE_OPNOTSUPP:
      return EOPNOTSUPP;
    case NLE_AF_NOSUPPORT:
      return EAFNOSUPPORT;
    case NLE_OBJ_NOTFOUND:
      return ENOENT;
    case NLE_BUSY:
      return EBUSY;
    case NLE_NOACCESS:
      return EACCES;
    case NLE_PERM:
      return EPERM;
    case NLE_NODEV:
      return ENODEV;
    case NLE_MSG_OVERFLOW:
      return ENOBUFS;
    default:
      return 0;
  }
}

struct Exchange {
  uint32_t seq = 0;
  bool done = false;
  std::optional<NetlinkAck> kernel_error;
  absl::Status reply_status;
  absl::FunctionRef<absl::Status(absl::Span<const uint8_t>)>* on_reply =
      nullptr;
};

absl::Span<const uint8_t> MsgBytes(nl_msg* msg) {
  const nlmsghdr* nlh = nlmsg_hdr(msg);
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(nlh),
                             nlh->nlmsg_len);
}

int OnSeqCheck(nl_msg* msg, void* arg) {
  auto* ex = static_cast<Exchange*>(arg);
  // A reply to an earlier, abandoned request: not ours, drop it.
  return nlmsg_hdr(msg)->nlmsg_seq == ex->seq ? NL_OK : NL_SKIP;
}

int OnValid(nl_msg* msg, void* arg) {
  auto* ex = static_cast<Exchange*>(arg);
  absl::Status s = (*ex->on_reply)(MsgBytes(msg));
  if (!s.ok() && ex->reply_status.ok()) ex->reply_status = std::move(s);
  return NL_OK;
}

int OnAck(nl_msg* msg, void* arg) {
  static_cast<Exchange*>(arg)->done = true;
  return NL_STOP;
}

int OnFinish(nl_msg* msg, void* arg) {
  auto* ex = static_cast<Exchange*>(arg);
  ex->done = true;
  // A dump that failed part way reports its errno in NLMSG_DONE.
  absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(MsgBytes(msg));
  if (ack.ok() && ack->error != 0) ex->kernel_error = *ack;
  return NL_STOP;
}

int OnError(sockaddr_nl* /*nla*/, nlmsgerr* err, void* arg) {
  auto* ex = static_cast<Exchange*>(arg);
  ex->done = true;
  // libnl hands over nlmsg_data(hdr); the header sits NLMSG_HDRLEN before it
  // (libnl lib/nl.c recvmsgs()). We need it for the extack TLVs.
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(
      reinterpret_cast<const uint8_t*>(err) - NLMSG_HDRLEN);
  absl::StatusOr<NetlinkAck> ack = ParseNetlinkAck(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(nlh), nlh->nlmsg_len));
  if (ack.ok()) {
    ex->kernel_error = *ack;
  } else {
    // A malformed ack: keep its errno only if it is one (negating INT32_MIN
    // would overflow), else report a protocol error.
    NetlinkAck bare;
    bare.error = err->error < 0 && err->error >= -4095 ? -err->error : EPROTO;
    ex->kernel_error = bare;
  }
  return NL_STOP;
}

}  // namespace

absl::Status LibnlStatus(int nle_error, absl::string_view what) {
  const int nle = nle_error < 0 ? -nle_error : nle_error;
  const int err = ErrnoForNle(nle);
  if (err != 0)
    return ErrnoStatus(err,
                       absl::StrCat(what, " (libnl: ", nl_geterror(nle), ")"));
  return absl::InternalError(absl::StrCat(what, ": libnl: ", nl_geterror(nle)));
}

void NlSockDeleter::operator()(nl_sock* sock) const { nl_socket_free(sock); }

absl::StatusOr<NlSockPtr> OpenNlSock(int protocol) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (!fd) {
    return ErrnoStatus(errno,
                       absl::StrCat("socket(AF_NETLINK, ", protocol, ")"));
  }
  sockaddr_nl local = {};
  local.nl_family = AF_NETLINK;  // nl_pid 0: the kernel picks a port
  if (bind(fd.get_unowned(), reinterpret_cast<sockaddr*>(&local),
           sizeof(local)) != 0) {
    return ErrnoStatus(errno, "bind(netlink socket)");
  }
  const int one = 1;
  if (setsockopt(fd.get_unowned(), SOL_NETLINK, NETLINK_EXT_ACK, &one,
                 sizeof(one)) != 0) {
    return ErrnoStatus(errno, "setsockopt(NETLINK_EXT_ACK)");
  }
  if (setsockopt(fd.get_unowned(), SOL_NETLINK, NETLINK_CAP_ACK, &one,
                 sizeof(one)) != 0) {
    return ErrnoStatus(errno, "setsockopt(NETLINK_CAP_ACK)");
  }
  timeval timeout = {};
  timeout.tv_sec = kReceiveTimeoutSeconds;
  if (setsockopt(fd.get_unowned(), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof(timeout)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_RCVTIMEO)");
  }
  NlSockPtr sock(nl_socket_alloc());
  if (sock == nullptr) return ErrnoStatus(ENOMEM, "nl_socket_alloc");
  const int err = nl_socket_set_fd(sock.get(), protocol, fd.get_unowned());
  if (err < 0) return LibnlStatus(err, "nl_socket_set_fd");  // fd not taken
  // From here libnl owns the fd: nl_socket_free() closes it.
  (void)fd.Release();
  // Size each read to the datagram so large dumps are never truncated.
  nl_socket_enable_msg_peek(sock.get());
  return sock;
}

absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> LibnlGenlSocket::Open() {
  absl::StatusOr<NlSockPtr> sock = OpenNlSock(NETLINK_GENERIC);
  if (!sock.ok()) return sock.status();
  return std::unique_ptr<LibnlGenlSocket>(
      new LibnlGenlSocket(*std::move(sock)));
}

LibnlGenlSocket::MsgPtr LibnlGenlSocket::NewMessage() {
  return MsgPtr(nlmsg_alloc(), &nlmsg_free);
}

absl::Status LibnlGenlSocket::PutGenlHeader(nl_msg* msg, int family_id,
                                            uint8_t cmd, uint8_t version,
                                            int flags) {
  if (msg == nullptr) return ErrnoStatus(ENOMEM, "nlmsg_alloc");
  if (genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family_id, /*hdrlen=*/0,
                  flags | NLM_F_REQUEST | NLM_F_ACK, cmd, version) == nullptr) {
    return ErrnoStatus(EMSGSIZE, "genlmsg_put");
  }
  return absl::OkStatus();
}

absl::Status LibnlGenlSocket::Transact(
    nl_msg* msg, absl::string_view what,
    absl::FunctionRef<absl::Status(absl::Span<const uint8_t>)> on_reply) {
  const int sent = nl_send_auto(sock_.get(), msg);
  if (sent < 0) return LibnlStatus(sent, absl::StrCat(what, ": send"));

  Exchange ex;
  ex.seq = nlmsg_hdr(msg)->nlmsg_seq;
  ex.on_reply = &on_reply;
  std::unique_ptr<nl_cb, void (*)(nl_cb*)> cb(nl_cb_alloc(NL_CB_DEFAULT),
                                              &nl_cb_put);
  if (cb == nullptr) return ErrnoStatus(ENOMEM, "nl_cb_alloc");
  nl_cb_set(cb.get(), NL_CB_SEQ_CHECK, NL_CB_CUSTOM, &OnSeqCheck, &ex);
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, &OnValid, &ex);
  nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, &OnAck, &ex);
  nl_cb_set(cb.get(), NL_CB_FINISH, NL_CB_CUSTOM, &OnFinish, &ex);
  nl_cb_err(cb.get(), NL_CB_CUSTOM, &OnError, &ex);

  while (!ex.done) {
    // The _report variant returns how many messages it handled, so a read
    // that yields nothing (0) is told apart from progress and cannot spin.
    const int rc = nl_recvmsgs_report(sock_.get(), cb.get());
    if (ex.kernel_error.has_value()) break;
    if (rc == 0 && !ex.done) {
      return ErrnoStatus(ECONNRESET,
                         absl::StrCat(what, ": netlink socket read nothing"));
    }
    if (rc < 0) {
      // NLE_AGAIN after SO_RCVTIMEO: the kernel did not answer in time.
      if (-rc == NLE_AGAIN) {
        return ErrnoStatus(ETIMEDOUT,
                           absl::StrCat(what, ": no reply within ",
                                        kReceiveTimeoutSeconds, "s"));
      }
      return LibnlStatus(rc, absl::StrCat(what, ": receive"));
    }
  }
  if (ex.kernel_error.has_value()) {
    return NetlinkAckStatus(*ex.kernel_error, what);
  }
  if (!ex.reply_status.ok()) {
    return absl::Status(ex.reply_status.code(),
                        absl::StrCat(what, ": ", ex.reply_status.message()));
  }
  return absl::OkStatus();
}

}  // namespace devmem
