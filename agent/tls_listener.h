#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/tls_connection.h"
#include "agent/tls_context.h"
#include "kernel/unique_fd.h"

namespace devmem::agent {

// The client identity of every connection handed to gRPC, keyed by the peer
// string gRPC reports for fd-based channels ("fd:<n>"). Thread-safe.
class PeerIdentities {
 public:
  void Set(int fd, std::string identity) ABSL_LOCKS_EXCLUDED(mu_);
  // nullopt: not a connection the listener verified.
  std::optional<std::string> Lookup(const std::string& peer) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> by_peer_ ABSL_GUARDED_BY(mu_);
};

// Accepts TCP connections, runs each one's TLS handshake and plaintext pump
// on a thread of its own (TlsConnection), and gives the plaintext end to
// the gRPC server with AddInsecureChannelFromFd once the client certificate
// verified. Nothing of a connection that fails its handshake reaches gRPC.
class TlsListener {
 public:
  struct Options {
    absl::Duration handshake_timeout = absl::Seconds(10);
    size_t max_connections = 1024;
    // Each failed handshake (or a connection refused over the limit, cause
    // "over_limit"), with OpenSSL's detail. May be empty.
    std::function<void(const std::string& cause, const std::string& detail,
                       const std::string& peer)>
        on_refused;
  };

  TlsListener(UniqueFd listen_fd, const TlsContextStore* contexts,
              grpc::Server* server, PeerIdentities* peers, Options options);
  ~TlsListener();  // Stop()

  absl::Status Start();
  // Stops accepting, ends every connection and joins their threads.
  void Stop();
  size_t open_connections() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Connection {
    std::thread thread;
    bool done = false;
  };
  void AcceptLoop();
  void Serve(UniqueFd tcp, const std::string& peer);
  void ReapDone() ABSL_LOCKS_EXCLUDED(mu_);

  UniqueFd listen_fd_;
  const TlsContextStore* contexts_;
  grpc::Server* server_;
  PeerIdentities* peers_;
  Options options_;
  UniqueFd stop_fd_;  // eventfd; readable once Stop() begins
  std::thread accept_thread_;
  mutable absl::Mutex mu_;
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace devmem::agent
