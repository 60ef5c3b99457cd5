#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/fleet/v1/fleet.grpc.pb.h"

namespace devmem::fleetctl {

// Where a launcher's mTLS identity comes from: flags, else the environment
// (DEVMEM_FLEET_CA, DEVMEM_FLEET_CERT, DEVMEM_FLEET_KEY,
// DEVMEM_FLEET_SERVER_NAME).
struct TlsFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // The name the agents' certificates carry, when hosts are dialled by an
  // address their certificates do not name (e.g. "devmem-agent").
  std::string server_name;
};
// `flags` with empty fields filled from the environment; INVALID_ARGUMENT
// naming the missing flag and variable.
absl::StatusOr<TlsFiles> ResolveTlsFiles(TlsFiles flags);

// One mTLS channel and fleet.v1 stub per agent, made up front (gRPC
// connects lazily, on the first call). Every call that fails UNAVAILABLE is
// tried once more after 300 ms (a gRPC retry policy; the agent's calls are
// idempotent or refused before acting when UNAVAILABLE): gRPC 1.51 can fail a
// good TCP connect with a clobbered errno ("No such file or directory",
// grpc/grpc#35064), and the channel reconnects within 100 ms.
class Connections {
 public:
  static absl::StatusOr<std::unique_ptr<Connections>> Open(
      const std::vector<std::string>& hosts, const TlsFiles& tls);

  size_t size() const { return hosts_.size(); }
  const std::string& host(size_t i) const { return hosts_[i]; }
  fleet::v1::Fleet::Stub* stub(size_t i) { return stubs_[i].get(); }

 private:
  std::vector<std::string> hosts_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<fleet::v1::Fleet::Stub>> stubs_;
};

// Runs fn(i) for every i in [0, n), at most `in_flight` at once, on threads
// of its own; `done` (may be empty) is called after each with the count so
// far, from the thread that finished it. Returns when all are done.
void ParallelFor(size_t n, size_t in_flight,
                 const std::function<void(size_t)>& fn,
                 const std::function<void(size_t)>& done = nullptr);

// A ClientContext with a deadline `timeout` from now.
std::unique_ptr<grpc::ClientContext> ContextWithin(absl::Duration timeout);

// `rpc(ctx)` with a deadline `timeout` from now; if it fails UNAVAILABLE,
// once more with wait_for_ready, within min(timeout, 1 s). gRPC 1.51 can fail
// a good TCP connect with a clobbered errno ("No such file or directory",
// grpc/grpc#35064); the channel reconnects within 100 ms and the second try
// goes through. A host that is really down keeps the first error.
template <typename Rpc>
grpc::Status CallWithin(absl::Duration timeout, const Rpc& rpc) {
  grpc::Status first = rpc(ContextWithin(timeout).get());
  if (first.error_code() != grpc::StatusCode::UNAVAILABLE) return first;
  auto ctx = ContextWithin(std::min(timeout, absl::Seconds(1)));
  ctx->set_wait_for_ready(true);
  grpc::Status again = rpc(ctx.get());
  return again.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? first
                                                                   : again;
}

// "UNAVAILABLE: devmemd is unreachable ..." / "DEADLINE_EXCEEDED: ...".
std::string Describe(const grpc::Status& s);

}  // namespace devmem::fleetctl
