#pragma once
// The client end of devmemd's session socket (docs/PROTOCOL.md): connect to
// <runtime_dir>/session.sock, read one frame (with the fds it carries) by a
// deadline, check the daemon's Hello, and turn an Error frame into a Status.
// Private to libdevmem; Session owns the socket and the exchange.
//
// Stateless functions; errors say what to check (is devmemd running, socket
// group, wrong --runtime_dir). Any ReadFrame error leaves the stream position
// unknown: the caller drops the socket.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/session.pb.h"

namespace devmem {

// One decoded daemon frame and the fds that came with it.
struct SessionReply {
  devmem::v1::SessionFrame frame;
  std::vector<UniqueFd> fds;
};

// A connected SOCK_SEQPACKET socket to devmemd's session socket.
absl::StatusOr<UniqueFd> ConnectSessionSocket(const std::string& runtime_dir);

// Reads and decodes one daemon frame, waiting until `deadline`. Takes up to
// kMaxFdsPerMessage fds; a frame whose fds did not all fit (MSG_CTRUNC) is an
// error, and every fd that came with it is closed.
absl::StatusOr<SessionReply> ReadFrame(int fd, absl::Time deadline);

// Reads the daemon's Hello within `timeout` and checks it: the daemon's
// refusal code, the protocol version and a session token.
absl::StatusOr<devmem::v1::Hello> ReadHello(int fd, absl::Duration timeout);

// "Redeem", "FdGrant", ... for messages.
const char* BodyName(const devmem::v1::SessionFrame& frame);

// The failure an Error frame carries (INTERNAL if its code is 0).
absl::Status ErrorFrameStatus(const devmem::v1::Error& error);

// Matches an FdBatch and its `fds` to the RedeemMany `tickets` it answers:
// one result per ticket, in request order, the ticket's fd or the failure of
// its TicketError. INTERNAL, with every fd closed, if the number of fds is not
// the number of tickets granted, or if the batch does not answer each ticket
// exactly once with grants in request order.
absl::StatusOr<std::vector<absl::StatusOr<UniqueFd>>> MatchFdBatch(
    absl::Span<const std::string> tickets, const devmem::v1::FdBatch& batch,
    std::vector<UniqueFd> fds);

}  // namespace devmem
