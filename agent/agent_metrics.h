#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem::agent {

// Every metric devmem-agent exports (docs/METRICS.md, "devmem-agent"), named
// as devmemd's are: RPCs and TLS handshake failures are counted as they
// happen; connections, streams and devmemd's figures are read when scraped.
// Thread-safe.
class AgentMetrics {
 public:
  struct Sources {
    std::string version;
    absl::Time started = absl::Now();
    std::function<size_t()> connections;
    std::function<size_t()> streams;
    std::function<uint64_t()> streams_stalled;
    // devmemd's GetStatus (reservations, reachability), asked per scrape.
    std::function<absl::StatusOr<devmem::v1::GetStatusResponse>()> devmemd;
  };
  explicit AgentMetrics(Sources sources);

  // One answered fleet.v1 RPC.
  void ObserveRpc(absl::string_view method, absl::StatusCode code,
                  absl::Duration elapsed);
  // A connection refused before gRPC saw it: a failed TLS handshake by
  // cause, or "over_limit".
  void CountRefused(absl::string_view cause);
  // SIGHUP reloads of the TLS files.
  void CountReload(bool ok);

  // The text exposition format (0.0.4).
  std::string Serialize();

 private:
  Sources sources_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>* rpcs_;
  prometheus::Family<prometheus::Counter>* refused_;
  prometheus::Family<prometheus::Counter>* reloads_;
};

}  // namespace devmem::agent
