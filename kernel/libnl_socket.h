#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

struct nl_sock;
struct nl_msg;

namespace devmem {

// An nl_sock that frees itself (and closes its fd).
struct NlSockDeleter {
  void operator()(nl_sock* sock) const;
};
using NlSockPtr = std::unique_ptr<nl_sock, NlSockDeleter>;

// A libnl-3 socket for `protocol` (NETLINK_ROUTE, NETLINK_GENERIC, ...) in the
// network namespace of the calling thread. The fd is created here with
// SOCK_CLOEXEC and bound (libnl's own nl_connect() gives no such promise), has
// NETLINK_EXT_ACK=1, NETLINK_CAP_ACK=1 and a receive timeout, and is owned by
// the returned nl_sock.
absl::StatusOr<NlSockPtr> OpenNlSock(int protocol);

// A libnl-3 NETLINK_GENERIC socket that does one request/reply exchange at a
// time and keeps the kernel's errno and extack text.
//
// Built on OpenNlSock(NETLINK_GENERIC); the nl_sock (and with it the fd) is
// freed with this object. Not thread-safe: callers serialize.
class LibnlGenlSocket {
 public:
  // The socket lives in the network namespace of the calling thread.
  static absl::StatusOr<std::unique_ptr<LibnlGenlSocket>> Open();
  LibnlGenlSocket(const LibnlGenlSocket&) = delete;
  LibnlGenlSocket& operator=(const LibnlGenlSocket&) = delete;

  // A message for genlmsg_put()-style filling; nullptr only on ENOMEM.
  using MsgPtr = std::unique_ptr<nl_msg, void (*)(nl_msg*)>;
  static MsgPtr NewMessage();

  // Adds the nlmsghdr + genlmsghdr to `msg` (seq/port are stamped on send).
  // `flags` are extra NLM_F_* flags (e.g. NLM_F_DUMP); REQUEST|ACK are added.
  static absl::Status PutGenlHeader(nl_msg* msg, int family_id, uint8_t cmd,
                                    uint8_t version, int flags);

  // Sends `msg` and calls `on_reply` for each reply message of this request
  // until the kernel's ACK, NLMSG_DONE or error. Replies to older requests
  // (other sequence numbers) are skipped. Kernel errors come back as
  // ErrnoStatus(errno, what, extack); an error returned by `on_reply` is
  // returned after the exchange is drained, so the socket stays in sync.
  absl::Status Transact(
      nl_msg* msg, absl::string_view what,
      absl::FunctionRef<absl::Status(absl::Span<const uint8_t>)> on_reply);

  // Borrowed; for libnl calls this class does not wrap. Do not close.
  nl_sock* sock_unowned() const { return sock_.get(); }

 private:
  explicit LibnlGenlSocket(NlSockPtr sock) : sock_(std::move(sock)) {}
  NlSockPtr sock_;
};

// Turns a (negative or positive) libnl NLE_* code into a Status that keeps the
// closest errno, and libnl's text.
absl::Status LibnlStatus(int nle_error, absl::string_view what);

}  // namespace devmem
