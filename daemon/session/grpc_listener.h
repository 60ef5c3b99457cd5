#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "daemon/session/peer_cred.h"
#include "kernel/accept_reserve.h"
#include "kernel/unique_fd.h"

namespace devmem {

// Remembers the SO_PEERCRED of every gRPC connection the daemon accepted, keyed
// by the peer string gRPC reports for fd-based channels ("fd:<n>"). gRPC's own
// Unix-socket listener does not expose peer credentials, so the daemon accepts
// connections itself and hands each fd to the server.
class GrpcPeerRegistry {
 public:
  void Set(int fd, const PeerCred& cred) ABSL_LOCKS_EXCLUDED(mu_);
  // Credentials for ServerContext::peer(); nullopt if unknown.
  std::optional<PeerCred> Lookup(const std::string& peer) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, PeerCred> by_peer_ ABSL_GUARDED_BY(mu_);
};

// Accepts connections on a listening AF_UNIX stream socket, records their peer
// credentials, and gives each one to `server` with AddInsecureChannelFromFd.
// Start() spawns one thread; Stop() (or the destructor) joins it.
class GrpcUnixListener {
 public:
  // `policy` (may be null) spares reading the unit of a peer its ids allow
  // (GetPeerCred).
  GrpcUnixListener(UniqueFd listen_fd, grpc::Server* server,
                   GrpcPeerRegistry* registry,
                   const AccessPolicy* policy = nullptr);
  ~GrpcUnixListener();

  absl::Status Start();
  void Stop();

 private:
  void Loop();

  UniqueFd listen_fd_;
  AcceptReserve reserve_;
  UniqueFd stop_fd_;  // eventfd
  grpc::Server* server_;
  GrpcPeerRegistry* registry_;
  const AccessPolicy* policy_;
  std::thread thread_;
};

}  // namespace devmem
