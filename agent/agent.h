#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/agent_metrics.h"
#include "agent/devmemd_link.h"
#include "agent/fleet_service.h"
#include "agent/host_view.h"
#include "agent/stream_guard.h"
#include "agent/tls_context.h"
#include "agent/tls_listener.h"
#include "daemon/ops/http_server.h"
#include "proto/fleet/v1/agent_config.pb.h"

namespace devmem::agent {

// devmem-agent, wired: the TLS listener feeding a gRPC server that serves
// fleet.v1.Fleet and grpc.health.v1, the link to devmemd, and /metrics.
class Agent {
 public:
  struct Options {
    fleet::v1::AgentConfig config;
    // Re-read on Reload() for the roles; empty: roles stay as started.
    std::string config_path;
    std::string version;
    // One line per refused connection (stderr in devmem-agent).
    std::function<void(const std::string&)> log;
  };
  // Loads the TLS files, binds the listen address and starts serving.
  // Errors name what failed (a TLS file, the address in use).
  static absl::StatusOr<std::unique_ptr<Agent>> Start(Options options);
  ~Agent();  // Stop()

  // SIGHUP: the TLS files and the config's roles, read again. On an error
  // nothing changes and the agent serves on with what it had.
  absl::Status Reload();
  void Stop();

  // "127.0.0.1:7443" with the bound port.
  const std::string& address() const { return address_; }
  // Empty without metrics_listen.
  std::string metrics_url() const;

 private:
  explicit Agent(Options options);
  absl::Status Init();
  // /metrics and /healthz on metrics_listen, if set.
  absl::Status StartMetricsEndpoint();

  Options options_;
  std::string address_;
  TlsContextStore contexts_;
  PeerIdentities peers_;
  DevmemdLink link_;
  HostView host_;
  StreamGuard streams_;
  HeapTrimmer trimmer_;
  std::unique_ptr<AgentMetrics> metrics_;
  std::unique_ptr<FleetService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TlsListener> listener_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace devmem::agent
