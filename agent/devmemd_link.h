#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "proto/devmem/v1/devmem.grpc.pb.h"

namespace devmem::agent {

// The agent's one channel to devmemd's gRPC Unix socket, where devmemd knows
// the agent by its uid (an admin peer). gRPC reconnects by itself with
// backoff (0.2 s up to 5 s) after devmemd restarts; calls made meanwhile fail
// at once with UNAVAILABLE instead of waiting. Thread-safe.
class DevmemdLink {
 public:
  DevmemdLink(std::string socket_path, absl::Duration call_timeout);

  devmem::v1::Devmem::Stub* stub() { return stub_.get(); }
  // A context for one unary call, with the call deadline.
  std::unique_ptr<grpc::ClientContext> UnaryContext() const;
  // A context for a stream (no deadline; the agent cancels it).
  static std::unique_ptr<grpc::ClientContext> StreamContext();
  // What the fleet client gets for devmemd's answer: devmemd's own errors as
  // they are; a transport failure as UNAVAILABLE saying devmemd is
  // unreachable and that the agent keeps retrying.
  grpc::Status Relay(const grpc::Status& upstream) const;
  const std::string& socket_path() const { return socket_path_; }

 private:
  const std::string socket_path_;
  const absl::Duration call_timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<devmem::v1::Devmem::Stub> stub_;
};

}  // namespace devmem::agent
