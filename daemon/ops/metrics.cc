#include "daemon/ops/metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "daemon/ops/metric_family.h"
#include "kernel/errno_status.h"

namespace devmem {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr devmem::v1::ProfileState kProfileStates[] = {
    devmem::v1::PROFILE_STATE_UNMANAGED, devmem::v1::PROFILE_STATE_NOT_CAPABLE,
    devmem::v1::PROFILE_STATE_APPLIED,   devmem::v1::PROFILE_STATE_FAILED,
    devmem::v1::PROFILE_STATE_RESTORED,  devmem::v1::PROFILE_STATE_PARTIAL};

constexpr HealthState kHealthStates[] = {
    HealthState::kStarting, HealthState::kReady, HealthState::kDegraded,
    HealthState::kFailed};

// Buckets from 50 us (a Ping) to 10 s (a slow netlink call under rtnl).
prometheus::Histogram::BucketBoundaries RequestBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

// Build info, start time and health state.
void AddProcessFamilies(const DaemonMetrics::Sources& sources,
                        std::vector<MetricFamily>* out) {
  FamilyBuilder("devmemd_build_info",
                "devmemd's version and NIC backend; always 1.",
                MetricType::Gauge)
      .Add({{"version", sources.version}, {"backend", sources.backend}}, 1)
      .To(out);
  FamilyBuilder("devmemd_start_time_seconds",
                "When devmemd started, in seconds since the Unix epoch.",
                MetricType::Gauge)
      .Add({}, absl::ToDoubleSeconds(sources.started - absl::UnixEpoch()))
      .To(out);

  if (sources.health) {
    const HealthReport report = sources.health();
    FamilyBuilder health("devmemd_health_state",
                         "1 for devmemd's current health state (as /healthz "
                         "reports it), 0 for the others.",
                         MetricType::Gauge);
    for (HealthState s : kHealthStates) {
      health.Add({{"state", HealthStateName(s)}}, report.state == s ? 1 : 0);
    }
    health.To(out);
  }
}

// Sessions and pending tickets.
void AddSessionFamilies(const DaemonMetrics::Sources& sources,
                        std::vector<MetricFamily>* out) {
  if (sources.sessions) {
    const DaemonMetrics::SessionFigures s = sources.sessions();
    FamilyBuilder("devmemd_sessions",
                  "Open sessions; detached ones outlived a restart and wait "
                  "to be resumed.",
                  MetricType::Gauge)
        .Add({{"state", "attached"}}, static_cast<double>(s.attached))
        .Add({{"state", "detached"}}, static_cast<double>(s.detached))
        .To(out);
    FamilyBuilder("devmemd_sessions_opened_total", "Sessions opened.",
                  MetricType::Counter)
        .Add({}, static_cast<double>(s.opened_total))
        .To(out);
    FamilyBuilder("devmemd_tickets_pending",
                  "File descriptors waiting behind a ticket to be redeemed.",
                  MetricType::Gauge)
        .Add({}, static_cast<double>(s.pending_tickets))
        .To(out);
  }
}

// The journal's health, errors and size.
void AddJournalFamilies(const DaemonMetrics::Sources& sources,
                        std::vector<MetricFamily>* out) {
  if (sources.journal) {
    const DaemonMetrics::JournalFigures j = sources.journal();
    FamilyBuilder("devmemd_journal_healthy",
                  "1 if the journal accepts records; 0 if new work is "
                  "refused because it cannot be recorded.",
                  MetricType::Gauge)
        .Add({}, j.healthy ? 1 : 0)
        .To(out);
    FamilyBuilder("devmemd_journal_errors_total",
                  "Journal records that could not be written.",
                  MetricType::Counter)
        .Add({}, static_cast<double>(j.errors_total))
        .To(out);
    FamilyBuilder("devmemd_journal_size_bytes",
                  "Size of the journal file <state_dir>/journal.",
                  MetricType::Gauge)
        .Add({}, static_cast<double>(j.size_bytes))
        .To(out);
    FamilyBuilder("devmemd_journal_syncs_total",
                  "fdatasync calls of the journal (group commit: records "
                  "written while one is in flight share the next).",
                  MetricType::Counter)
        .Add({}, static_cast<double>(j.syncs_total))
        .To(out);
    FamilyBuilder("devmemd_journal_volatile",
                  "1 if the state directory is on tmpfs/ramfs: records "
                  "survive a devmemd crash but not a reboot.",
                  MetricType::Gauge)
        .Add({}, j.volatile_medium ? 1 : 0)
        .To(out);
  }
}

// Reservations by state, and whether the host is cordoned.
void AddHostFamilies(const DaemonMetrics::Sources& sources,
                     std::vector<MetricFamily>* out) {
  if (!sources.host) return;
  const NicManager::HostFigures h = sources.host();
  FamilyBuilder("devmemd_reservations",
                "Queue reservations for jobs: active, or expired (kept an "
                "hour so their tokens say when).",
                MetricType::Gauge)
      .Add({{"state", "active"}}, h.reservations_active)
      .Add({{"state", "expired"}}, h.reservations_expired)
      .To(out);
  FamilyBuilder("devmemd_cordoned",
                "1 while the host refuses new reservations and unreserved "
                "bindings.",
                MetricType::Gauge)
      .Add({}, h.cordoned ? 1 : 0)
      .To(out);
}

// Per NIC: profile state, drift, the pool, leases, bindings and rules.
void AddNicFamilies(const std::vector<NicManager::NicMetrics>& nics,
                    std::vector<MetricFamily>* out) {
  FamilyBuilder profile("devmemd_nic_profile_state",
                        "1 for the NIC's profile state, 0 for the others.",
                        MetricType::Gauge);
  FamilyBuilder degraded("devmemd_nic_degraded",
                         "1 if the NIC no longer matches its profile (link "
                         "down, channels or header split changed).",
                         MetricType::Gauge);
  FamilyBuilder queues("devmemd_queues",
                       "devmem pool queues: free, reserved for a job, or "
                       "used (bound).",
                       MetricType::Gauge);
  FamilyBuilder leases("devmemd_leases",
                       "Sessions holding at least one binding on the NIC.",
                       MetricType::Gauge);
  FamilyBuilder bindings("devmemd_bindings", "dmabuf bindings held.",
                         MetricType::Gauge);
  FamilyBuilder rules("devmemd_rules",
                      "Flow steering rules devmemd has installed now.",
                      MetricType::Gauge);
  FamilyBuilder installed("devmemd_rules_installed_total",
                          "Flow steering rules installed.",
                          MetricType::Counter);
  FamilyBuilder removed("devmemd_rules_removed_total",
                        "Flow steering rules removed, by cause.",
                        MetricType::Counter);
  FamilyBuilder failed("devmemd_rules_failed_total",
                       "Steering requests refused, by cause.",
                       MetricType::Counter);
  for (const NicManager::NicMetrics& n : nics) {
    for (devmem::v1::ProfileState s : kProfileStates) {
      profile.Add({{"nic", n.nic}, {"state", ProfileStateLabel(s)}},
                  n.state == s ? 1 : 0);
    }
    degraded.Add({{"nic", n.nic}}, n.degraded ? 1 : 0);
    queues.Add({{"nic", n.nic}, {"state", "free"}}, n.queues_free);
    queues.Add({{"nic", n.nic}, {"state", "used"}}, n.queues_used);
    queues.Add({{"nic", n.nic}, {"state", "reserved"}}, n.queues_reserved);
    leases.Add({{"nic", n.nic}}, n.leases);
    bindings.Add({{"nic", n.nic}, {"direction", "rx"}}, n.bindings_rx);
    bindings.Add({{"nic", n.nic}, {"direction", "tx"}}, n.bindings_tx);
    rules.Add({{"nic", n.nic}}, n.rules);
    installed.Add({{"nic", n.nic}}, static_cast<double>(n.rules_installed));
    for (const char* cause :
         {NicManager::kRemovedReleased, NicManager::kRemovedSessionClosed,
          NicManager::kRemovedRestore, NicManager::kRemovedRecovery,
          NicManager::kRemovedDrain}) {
      auto it = n.rules_removed.find(cause);
      removed.Add(
          {{"nic", n.nic}, {"cause", cause}},
          it == n.rules_removed.end() ? 0 : static_cast<double>(it->second));
    }
    for (const char* cause :
         {NicManager::kFailedInvalid, NicManager::kFailedConflict,
          NicManager::kFailedQuota, NicManager::kFailedKernel,
          NicManager::kFailedJournal}) {
      auto it = n.rules_failed.find(cause);
      failed.Add(
          {{"nic", n.nic}, {"cause", cause}},
          it == n.rules_failed.end() ? 0 : static_cast<double>(it->second));
    }
  }
  for (FamilyBuilder* b : {&profile, &degraded, &queues, &leases, &bindings,
                           &rules, &installed, &removed, &failed}) {
    b->To(out);
  }
}

}  // namespace

const char* StatusCodeLabel(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "OK";
    case absl::StatusCode::kCancelled:
      return "CANCELLED";
    case absl::StatusCode::kUnknown:
      return "UNKNOWN";
    case absl::StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound:
      return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted:
      return "ABORTED";
    case absl::StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal:
      return "INTERNAL";
    case absl::StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss:
      return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

DaemonMetrics::DaemonMetrics(Sources sources)
    : sources_(std::move(sources)),
      registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildHistogram()
                   .Name("devmemd_request_duration_seconds")
                   .Help(
                       "Time devmemd took to answer a gRPC RPC or a "
                       "session frame, by method and status code.")
                   .Register(*registry_);
  fds_ = &prometheus::BuildCounter()
              .Name("devmemd_fd_handoffs_total")
              .Help(
                  "File descriptors passed with SCM_RIGHTS, by direction "
                  "and kind.")
              .Register(*registry_);
  // The common series exist from the start, so rate() sees their first
  // increase.
  for (const char* kind : {"socket", "anchor"}) {
    fds_->Add({{"direction", "to_client"}, {"kind", kind}});
  }
  for (const char* kind : {"dmabuf", "anchor"}) {
    fds_->Add({{"direction", "from_client"}, {"kind", kind}});
  }
}

void DaemonMetrics::ObserveRequest(absl::string_view method,
                                   absl::StatusCode code,
                                   absl::Duration elapsed) {
  requests_
      ->Add({{"method", std::string{method}}, {"code", StatusCodeLabel(code)}},
            RequestBuckets())
      .Observe(absl::ToDoubleSeconds(elapsed));
}

void DaemonMetrics::CountFd(absl::string_view direction, absl::string_view kind,
                            size_t count) {
  fds_->Add(
          {{"direction", std::string{direction}}, {"kind", std::string{kind}}})
      .Increment(static_cast<double>(count));
}

std::vector<MetricFamily> DaemonMetrics::Collect() {
  std::vector<MetricFamily> out = registry_->Collect();
  AddProcessFamilies(sources_, &out);
  AddSessionFamilies(sources_, &out);
  AddJournalFamilies(sources_, &out);
  AddHostFamilies(sources_, &out);
  std::vector<NicManager::NicMetrics> nics;
  if (sources_.nics) nics = sources_.nics();
  AddNicFamilies(nics, &out);
  if (sources_.kernel != nullptr) {
    absl::MutexLock lock(&kernel_mu_);
    const absl::Time now = absl::Now();
    if (now - kernel_read_ >= sources_.kernel_refresh) {
      kernel_families_ = CollectKernel(nics);
      kernel_read_ = now;
    }
    out.insert(out.end(), kernel_families_.begin(), kernel_families_.end());
  }
  return out;
}

std::vector<MetricFamily> DaemonMetrics::CollectKernel(
    const std::vector<NicManager::NicMetrics>& nics) {
  std::vector<MetricFamily> out;
  FamilyBuilder supported("devmemd_kernel_stats_supported",
                          "1 if the NIC's driver reports this source of "
                          "figures over netdev netlink.",
                          MetricType::Gauge);
  // Device totals and bound queues, counter by counter.
  struct Counter {
    const char* suffix;
    const char* help;
    std::optional<uint64_t> QstatsInfo::*field;
  };
  const Counter kCounters[] = {
      {"rx_bytes_total", "qstats rx-bytes", &QstatsInfo::rx_bytes},
      {"rx_packets_total", "qstats rx-packets", &QstatsInfo::rx_packets},
      {"rx_alloc_fail_total",
       "qstats rx-alloc-fail: buffers the driver "
       "could not allocate",
       &QstatsInfo::rx_alloc_fail},
      {"rx_hw_drops_total", "qstats rx-hw-drops: packets the NIC dropped",
       &QstatsInfo::rx_hw_drops},
  };
  std::vector<FamilyBuilder> nic_counters;
  std::vector<FamilyBuilder> queue_counters;
  for (const Counter& c : kCounters) {
    nic_counters.emplace_back(absl::StrCat("devmemd_nic_", c.suffix),
                              absl::StrCat(c.help, " (device totals)."),
                              MetricType::Counter);
    queue_counters.emplace_back(
        absl::StrCat("devmemd_queue_", c.suffix),
        absl::StrCat(c.help, " (a devmem-bound RX queue)."),
        MetricType::Counter);
  }
  FamilyBuilder pools("devmemd_nic_page_pools",
                      "Page pools on the NIC, by the memory they hand out.",
                      MetricType::Gauge);
  FamilyBuilder nic_inflight(
      "devmemd_nic_page_pool_inflight",
      "Pages (netmems) the NIC's page pools have handed out and not got back.",
      MetricType::Gauge);
  FamilyBuilder nic_inflight_bytes("devmemd_nic_page_pool_inflight_bytes",
                                   "Memory held by those pages.",
                                   MetricType::Gauge);
  FamilyBuilder queue_inflight(
      "devmemd_queue_page_pool_inflight",
      "Pages handed out by a devmem-bound queue's page pool.",
      MetricType::Gauge);
  FamilyBuilder queue_inflight_bytes("devmemd_queue_page_pool_inflight_bytes",
                                     "Memory held by those pages.",
                                     MetricType::Gauge);
  FamilyBuilder dmabuf_bound("devmemd_queue_dmabuf_bound",
                             "1 if the NIC reports the queue bound to a "
                             "dmabuf (queue-get).",
                             MetricType::Gauge);

  for (const NicManager::NicMetrics& n : nics) {
    if (n.ifindex == 0) continue;
    const std::set<uint32_t> bound(n.bound_rx_queues.begin(),
                                   n.bound_rx_queues.end());
    // qstats: device totals, then the bound queues.
    auto totals = sources_.kernel->Qstats(n.ifindex, /*per_queue=*/false);
    if (totals.ok()) {
      supported.Add({{"nic", n.nic}, {"source", "qstats"}}, 1);
      for (const QstatsInfo& q : *totals) {
        for (size_t i = 0; i < std::size(kCounters); ++i) {
          const auto& v = q.*kCounters[i].field;
          if (v) nic_counters[i].Add({{"nic", n.nic}}, static_cast<double>(*v));
        }
      }
      if (!bound.empty()) {
        auto per_queue = sources_.kernel->Qstats(n.ifindex, true);
        if (per_queue.ok()) {
          for (const QstatsInfo& q : *per_queue) {
            if (q.queue_type != QueueInfo::Type::kRx || !q.queue_id ||
                !bound.count(*q.queue_id)) {
              continue;
            }
            const MetricLabels labels = {{"nic", n.nic},
                                         {"queue", absl::StrCat(*q.queue_id)}};
            for (size_t i = 0; i < std::size(kCounters); ++i) {
              const auto& v = q.*kCounters[i].field;
              if (v) queue_counters[i].Add(labels, static_cast<double>(*v));
            }
          }
        } else {
          ++kernel_errors_qstats_;
        }
      }
    } else if (StatusErrno(totals.status()) == EOPNOTSUPP) {
      // The driver has no queue stats ops (veth, lo).
      supported.Add({{"nic", n.nic}, {"source", "qstats"}}, 0);
    } else {
      ++kernel_errors_qstats_;
    }

    // Page pools: per NIC, and those on a bound queue's NAPI.
    auto pp = sources_.kernel->PagePools(n.ifindex);
    if (!pp.ok()) {
      ++kernel_errors_page_pool_;
      continue;
    }
    supported.Add({{"nic", n.nic}, {"source", "page_pool"}}, 1);
    uint64_t host = 0;
    uint64_t dmabuf = 0;
    uint64_t inflight = 0;
    uint64_t inflight_bytes = 0;
    for (const PagePoolInfo& p : *pp) {
      ++(p.dmabuf ? dmabuf : host);
      inflight += p.inflight.value_or(0);
      inflight_bytes += p.inflight_mem.value_or(0);
    }
    pools.Add({{"nic", n.nic}, {"memory", "host"}}, static_cast<double>(host));
    pools.Add({{"nic", n.nic}, {"memory", "dmabuf"}},
              static_cast<double>(dmabuf));
    nic_inflight.Add({{"nic", n.nic}}, static_cast<double>(inflight));
    nic_inflight_bytes.Add({{"nic", n.nic}},
                           static_cast<double>(inflight_bytes));
    if (bound.empty() || !sources_.queues) continue;
    auto queue_view = sources_.queues(n.ifindex);
    if (!queue_view.ok()) continue;
    for (const QueueInfo& q : *queue_view) {
      if (q.type != QueueInfo::Type::kRx || !bound.count(q.id)) continue;
      const MetricLabels labels = {{"nic", n.nic},
                                   {"queue", absl::StrCat(q.id)}};
      dmabuf_bound.Add(labels, q.dmabuf ? 1 : 0);
      if (!q.napi_id) continue;
      uint64_t q_inflight = 0;
      uint64_t q_bytes = 0;
      for (const PagePoolInfo& p : *pp) {
        if (p.napi_id != static_cast<uint64_t>(*q.napi_id)) continue;
        q_inflight += p.inflight.value_or(0);
        q_bytes += p.inflight_mem.value_or(0);
      }
      queue_inflight.Add(labels, static_cast<double>(q_inflight));
      queue_inflight_bytes.Add(labels, static_cast<double>(q_bytes));
    }
  }
  supported.To(&out);
  for (FamilyBuilder& b : nic_counters) b.To(&out);
  for (FamilyBuilder& b : queue_counters) b.To(&out);
  for (FamilyBuilder* b :
       {&pools, &nic_inflight, &nic_inflight_bytes, &queue_inflight,
        &queue_inflight_bytes, &dmabuf_bound}) {
    b->To(&out);
  }
  FamilyBuilder("devmemd_kernel_stats_errors_total",
                "netdev netlink reads of kernel figures that failed.",
                MetricType::Counter)
      .Add({{"source", "qstats"}}, static_cast<double>(kernel_errors_qstats_))
      .Add({{"source", "page_pool"}},
           static_cast<double>(kernel_errors_page_pool_))
      .To(&out);
  return out;
}

std::string DaemonMetrics::Serialize() {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace devmem
