#include "daemon/session/grpc_listener.h"

#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernel/errno_status.h"

namespace devmem {

void GrpcPeerRegistry::Set(int fd, const PeerCred& cred) {
  absl::MutexLock lock(&mu_);
  // grpc_server_add_insecure_channel_from_fd names the endpoint "fd:<n>"
  // (src/core/ext/transport/chttp2/server/insecure/server_chttp2_posix.cc).
  by_peer_[absl::StrCat("fd:", fd)] = cred;
}

std::optional<PeerCred> GrpcPeerRegistry::Lookup(
    const std::string& peer) const {
  absl::MutexLock lock(&mu_);
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return std::nullopt;
  return it->second;
}

GrpcUnixListener::GrpcUnixListener(UniqueFd listen_fd, grpc::Server* server,
                                   GrpcPeerRegistry* registry,
                                   const AccessPolicy* policy)
    : listen_fd_(std::move(listen_fd)),
      server_(server),
      registry_(registry),
      policy_(policy) {}

GrpcUnixListener::~GrpcUnixListener() { Stop(); }

absl::Status GrpcUnixListener::Start() {
  stop_fd_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return ErrnoStatus(errno, "eventfd");
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void GrpcUnixListener::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(stop_fd_.get_unowned(), &one, sizeof(one));
  thread_.join();
}

void GrpcUnixListener::Loop() {
  for (;;) {
    struct pollfd pfds[2] = {{listen_fd_.get_unowned(), POLLIN, 0},
                             {stop_fd_.get_unowned(), POLLIN, 0}};
    int n = ::poll(pfds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfds[1].revents != 0) return;
    if ((pfds[0].revents & POLLIN) == 0) continue;
    // Out of fds, the pending connection is shed (closed at once) rather
    // than left queued to wake this loop forever.
    UniqueFd conn = reserve_.Accept(listen_fd_.get_unowned(),
                                    SOCK_CLOEXEC | SOCK_NONBLOCK, nullptr);
    if (!conn) continue;  // EAGAIN, ECONNABORTED, EMFILE: try again later
    auto cred = GetPeerCred(conn.get_unowned(), policy_);
    if (!cred.ok()) continue;  // closes the connection
    // Record before handing over so the first RPC already finds it. A reused fd
    // number simply overwrites the entry of the closed connection.
    registry_->Set(conn.get_unowned(), *cred);
    grpc::AddInsecureChannelFromFd(server_, conn.Release());
  }
}

}  // namespace devmem
