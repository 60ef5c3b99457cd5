#include "agent/agent_metrics.h"

#include <prometheus/text_serializer.h>

#include <vector>

#include "absl/status/status.h"
#include "agent/tls_connection.h"
#include "daemon/ops/metric_family.h"

namespace devmem::agent {
namespace {

using prometheus::MetricType;

// From 100 us (a refused call) to 10 s (the relay deadline).
prometheus::Histogram::BucketBoundaries RpcBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

}  // namespace

AgentMetrics::AgentMetrics(Sources sources)
    : sources_(std::move(sources)),
      registry_(std::make_shared<prometheus::Registry>()) {
  rpcs_ = &prometheus::BuildHistogram()
               .Name("devmem_agent_rpc_duration_seconds")
               .Help(
                   "Time devmem-agent took to answer a fleet.v1 RPC (relay "
                   "to devmemd included), by method and status code; "
                   "_count is the RPC count.")
               .Register(*registry_);
  refused_ = &prometheus::BuildCounter()
                  .Name("devmem_agent_tls_handshake_failures_total")
                  .Help(
                      "Client connections refused before any RPC: a failed "
                      "TLS handshake by cause, or over_limit.")
                  .Register(*registry_);
  reloads_ = &prometheus::BuildCounter()
                  .Name("devmem_agent_tls_reloads_total")
                  .Help("SIGHUP reloads of the TLS files, by result.")
                  .Register(*registry_);
  // Every cause exists from the start, so rate() sees the first increase.
  for (HandshakeFailure cause : kAllHandshakeFailures) {
    refused_->Add({{"cause", HandshakeFailureName(cause)}});
  }
  refused_->Add({{"cause", "over_limit"}});
  reloads_->Add({{"result", "ok"}});
  reloads_->Add({{"result", "error"}});
}

void AgentMetrics::ObserveRpc(absl::string_view method, absl::StatusCode code,
                              absl::Duration elapsed) {
  rpcs_
      ->Add({{"method", std::string{method}},
             {"code", absl::StatusCodeToString(code)}},
            RpcBuckets())
      .Observe(absl::ToDoubleSeconds(elapsed));
}

void AgentMetrics::CountRefused(absl::string_view cause) {
  refused_->Add({{"cause", std::string{cause}}}).Increment();
}

void AgentMetrics::CountReload(bool ok) {
  reloads_->Add({{"result", ok ? "ok" : "error"}}).Increment();
}

std::string AgentMetrics::Serialize() {
  std::vector<prometheus::MetricFamily> out = registry_->Collect();
  FamilyBuilder("devmem_agent_build_info", "devmem-agent's version; always 1.",
                MetricType::Gauge)
      .Add({{"version", sources_.version}}, 1)
      .To(&out);
  FamilyBuilder("devmem_agent_start_time_seconds",
                "When devmem-agent started, in seconds since the Unix epoch.",
                MetricType::Gauge)
      .Add({}, absl::ToDoubleSeconds(sources_.started - absl::UnixEpoch()))
      .To(&out);
  if (sources_.connections) {
    FamilyBuilder("devmem_agent_connections",
                  "Client connections open (TLS handshake done or running).",
                  MetricType::Gauge)
        .Add({}, static_cast<double>(sources_.connections()))
        .To(&out);
  }
  if (sources_.streams) {
    FamilyBuilder("devmem_agent_streams", "Watch and Drain streams open.",
                  MetricType::Gauge)
        .Add({}, static_cast<double>(sources_.streams()))
        .To(&out);
  }
  if (sources_.streams_stalled) {
    FamilyBuilder("devmem_agent_streams_stalled_total",
                  "Streams cancelled because their client stopped reading "
                  "for stall_timeout_s.",
                  MetricType::Counter)
        .Add({}, static_cast<double>(sources_.streams_stalled()))
        .To(&out);
  }
  if (sources_.devmemd) {
    auto status = sources_.devmemd();
    FamilyBuilder("devmem_agent_devmemd_up",
                  "1 if devmemd answered the agent at this scrape, else 0.",
                  MetricType::Gauge)
        .Add({}, status.ok() ? 1 : 0)
        .To(&out);
    if (status.ok()) {
      FamilyBuilder("devmem_agent_reservations",
                    "Reservations on this host by state, as devmemd holds "
                    "them.",
                    MetricType::Gauge)
          .Add({{"state", "active"}}, status->reservations_active())
          .Add({{"state", "expired"}}, status->reservations_expired())
          .To(&out);
    }
  }
  return prometheus::TextSerializer().Serialize(out);
}

}  // namespace devmem::agent
