#pragma once
// The two long-lived admin streams of devmem.v1: Drain (cordon, then report
// progress until nothing is left or the deadline passes) and Watch (a
// snapshot when needed, then every event in revision order). Each runs on
// its gRPC handler thread, waits on the EventLog rather than polling fast,
// and ends when the client cancels or the server shuts down.

#include <string>

#include <grpcpp/server_context.h>
#include <grpcpp/support/sync_stream.h>

#include "absl/time/time.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/state/event_log.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

struct StreamOptions {
  // How long a stream waits for news before looking again (progress lines,
  // cancellation).
  absl::Duration poll = absl::Seconds(1);
  // Events per WatchResponse.
  size_t batch = 256;
};

// The host must be cordoned already (the caller did, and answered its
// errors). Ends OK after the last progress message (done, or the deadline).
grpc::Status RunDrain(
    NicManager& nics, EventLog& events, const devmem::v1::DrainRequest& req,
    grpc::ServerContext* ctx,
    grpc::ServerWriterInterface<devmem::v1::DrainProgress>* out,
    const StreamOptions& options = {});

grpc::Status RunWatch(
    NicManager& nics, EventLog& events, const devmem::v1::WatchRequest& req,
    grpc::ServerContext* ctx,
    grpc::ServerWriterInterface<devmem::v1::WatchResponse>* out,
    const StreamOptions& options = {});

}  // namespace devmem
