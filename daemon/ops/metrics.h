#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/ops/health.h"
#include "kernel/netdev_genl.h"
#include "kernel/nic_info.h"

namespace devmem {

// The kernel's own figures for a NIC: netdev qstats-get and page-pool-get
// (NetdevGenl in devmemd; a fake in unit tests).
class KernelStatsSource {
 public:
  virtual ~KernelStatsSource() = default;
  virtual absl::StatusOr<std::vector<QstatsInfo>> Qstats(uint32_t ifindex,
                                                         bool per_queue) = 0;
  virtual absl::StatusOr<std::vector<PagePoolInfo>> PagePools(
      uint32_t ifindex) = 0;
};

// NetdevGenl as a KernelStatsSource.
class NetdevKernelStats : public KernelStatsSource {
 public:
  explicit NetdevKernelStats(std::unique_ptr<NetdevGenl> netdev)
      : netdev_(std::move(netdev)) {}
  absl::StatusOr<std::vector<QstatsInfo>> Qstats(uint32_t ifindex,
                                                 bool per_queue) override {
    return netdev_->QstatsGet(ifindex, per_queue);
  }
  absl::StatusOr<std::vector<PagePoolInfo>> PagePools(
      uint32_t ifindex) override {
    return netdev_->PagePoolGet(ifindex);
  }

 private:
  std::unique_ptr<NetdevGenl> netdev_;
};

// Every metric devmemd exports (docs/METRICS.md). Events (requests, fd
// hand-offs) are counted as they happen; everything else is read from its
// source when scraped. Thread-safe.
class DaemonMetrics {
 public:
  struct SessionFigures {
    uint64_t attached = 0;
    uint64_t detached = 0;
    uint64_t pending_tickets = 0;
    uint64_t opened_total = 0;
  };
  struct JournalFigures {
    bool healthy = true;
    uint64_t errors_total = 0;
    uint64_t size_bytes = 0;
    uint64_t syncs_total = 0;
    bool volatile_medium = false;
  };
  struct Sources {
    std::string version;
    std::string backend;
    absl::Time started = absl::Now();
    std::function<std::vector<NicManager::NicMetrics>()> nics;
    std::function<SessionFigures()> sessions;
    std::function<JournalFigures()> journal;  // may be empty: no journal
    // Reservations and the cordon; may be empty.
    std::function<NicManager::HostFigures()> host;
    std::function<HealthReport()> health;
    // The backend's queue view (NicControl::GetQueues): which queue is on
    // which NAPI and bound to a dmabuf. May be empty.
    std::function<absl::StatusOr<std::vector<QueueInfo>>(uint32_t ifindex)>
        queues;
    // May be null (no netdev family): the kernel families are left out.
    KernelStatsSource* kernel = nullptr;
    // Kernel figures are read at most this often; scrapes in between get the
    // last reading.
    absl::Duration kernel_refresh = absl::Seconds(1);
  };

  explicit DaemonMetrics(Sources sources);

  // One answered gRPC RPC or session frame. `method` is bounded by the
  // caller (RPC names, "session.<Frame>").
  void ObserveRequest(absl::string_view method, absl::StatusCode code,
                      absl::Duration elapsed);
  // `count` fds passed with SCM_RIGHTS. direction: "to_client" or
  // "from_client"; kind: "socket", "anchor" or "dmabuf".
  void CountFd(absl::string_view direction, absl::string_view kind,
               size_t count = 1);

  // Every family, now.
  std::vector<prometheus::MetricFamily> Collect();
  // The text exposition format (0.0.4) of Collect().
  std::string Serialize();

 private:
  std::vector<prometheus::MetricFamily> CollectKernel(
      const std::vector<NicManager::NicMetrics>& nics)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kernel_mu_);

  Sources sources_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>* requests_;
  prometheus::Family<prometheus::Counter>* fds_;
  absl::Mutex kernel_mu_;
  absl::Time kernel_read_ ABSL_GUARDED_BY(kernel_mu_) = absl::InfinitePast();
  std::vector<prometheus::MetricFamily> kernel_families_
      ABSL_GUARDED_BY(kernel_mu_);
  uint64_t kernel_errors_qstats_ ABSL_GUARDED_BY(kernel_mu_) = 0;
  uint64_t kernel_errors_page_pool_ ABSL_GUARDED_BY(kernel_mu_) = 0;
};

// gRPC status code names as Prometheus label values ("OK", "NOT_FOUND"...).
const char* StatusCodeLabel(absl::StatusCode code);

}  // namespace devmem
